//! The README runs in order: every ```` ```console ```` block of README.md is
//! run, top to bottom, against a fresh 3-node cluster, and each command's
//! output is checked against the lines the README shows.
//!
//! In a `console` block a line starting with `$ ` is a command (a line that
//! ends with `\` continues on the next one); the lines up to the next command
//! are its expected output (stdout and stderr together, trailing blank lines
//! ignored). Values that differ from run to run are placeholders:
//! `<context>` (a base64url token), `<time>` (an RFC 3339 UTC time with
//! milliseconds), `<ms>` (a number), `<date>` (an HTTP date) and
//! `<boundary>` (`ringkv-` and 16 hex digits). Any other text must match
//! exactly.
//!
//! All commands run in one `sh`, so a variable set by one (`CTX=$(...)`) is
//! seen by the next, with the `ringkv` binary under test first on `PATH`.
//! The README's addresses `127.0.0.1:8001..8003` are rewritten to the test
//! cluster's HTTP ports, in commands and expected output, and `RINGKV_NODE`
//! points at the first node (the CLI's default is `127.0.0.1:8001`). curl's
//! progress meter, which it prints only when its output is not a terminal,
//! is turned off (`-sS`), so the output is what a person sees at a terminal.

mod common;

use common::{Cluster, BIN};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// The README, relative to this crate.
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");

/// Printed after each command so the test knows where its output ends.
const MARK: &str = "@@ringkv-readme-command-done@@";

/// How long one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// One command of a `console` block and the output the README shows.
#[derive(Debug)]
struct Step {
    /// 1-based line of README.md where the command starts.
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// The commands of every `console` block, in order.
fn parse(readme: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    let mut continues = false;
    for (i, line) in readme.lines().enumerate() {
        if !in_console {
            in_console = line.trim_end() == "```console";
            continue;
        }
        if line.trim_end() == "```" {
            in_console = false;
            continues = false;
            continue;
        }
        if continues {
            let step = steps.last_mut().expect("a continued command");
            step.command.push('\n');
            step.command.push_str(line);
            continues = line.ends_with('\\');
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                line: i + 1,
                command: command.to_string(),
                expected: Vec::new(),
            });
            continues = command.ends_with('\\');
        } else {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("README.md:{}: output before any `$ ` command", i + 1));
            step.expected.push(line.to_string());
        }
    }
    assert!(!in_console, "README.md: a console block is not closed");
    steps
}

/// Whether `text` is what placeholder `name` stands for.
fn fits(name: &str, text: &str) -> bool {
    let all = |ok: fn(char) -> bool| !text.is_empty() && text.chars().all(ok);
    match name {
        "context" => all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "ms" => all(|c| c.is_ascii_digit()),
        "time" => {
            let shape = "0000-00-00T00:00:00.000Z";
            text.len() == shape.len()
                && shape.chars().zip(text.chars()).all(|(s, c)| match s {
                    '0' => c.is_ascii_digit(),
                    _ => s == c,
                })
        }
        // e.g. `Tue, 01 Dec 2026 23:25:21 GMT`
        "date" => text.len() == 29 && text.ends_with(" GMT") && text.is_ascii(),
        "boundary" => text
            .strip_prefix("ringkv-")
            .is_some_and(|hex| hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit())),
        _ => false,
    }
}

const PLACEHOLDERS: [&str; 5] = ["context", "ms", "time", "date", "boundary"];

/// Whether an actual line matches an expected one, placeholders included.
fn line_matches(expected: &str, actual: &str) -> bool {
    let placeholder = PLACEHOLDERS.iter().find_map(|name| {
        expected
            .strip_prefix('<')
            .and_then(|e| e.strip_prefix(name))
            .and_then(|e| e.strip_prefix('>'))
            .map(|rest| (*name, rest))
    });
    if let Some((name, rest)) = placeholder {
        return (1..=actual.len())
            .filter(|&n| actual.is_char_boundary(n))
            .any(|n| fits(name, &actual[..n]) && line_matches(rest, &actual[n..]));
    }
    match expected.chars().next() {
        None => actual.is_empty(),
        Some(c) => {
            actual.starts_with(c)
                && line_matches(&expected[c.len_utf8()..], &actual[c.len_utf8()..])
        }
    }
}

/// Drops trailing blank lines.
fn trimmed(lines: &[String]) -> &[String] {
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1);
    &lines[..end]
}

/// One `sh` that runs the commands, keeping variables between them.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Shell {
    fn start(dir: &Path, node_url: &str) -> Shell {
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new("sh")
            .current_dir(dir)
            .env("PATH", path)
            .env("RINGKV_NODE", node_url)
            .env("RINGKV_LOG", "warn")
            .env("NO_COLOR", "1")
            .env_remove("CURL_HOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sh");
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut buf = Vec::new();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        let line = line.trim_end_matches(['\n', '\r']).to_string();
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        // stderr joins stdout, in order; curl is quiet but shows errors and
        // cannot hang.
        writeln!(
            stdin,
            "exec 2>&1\ncurl() {{ command curl -sS --max-time 20 \"$@\"; }}"
        )
        .unwrap();
        Shell {
            child,
            stdin,
            lines,
        }
    }

    /// Runs one command and returns its output lines.
    fn run(&mut self, command: &str) -> Vec<String> {
        // The newline before the mark ends output that has none of its own.
        writeln!(self.stdin, "{command}\nprintf '\\n%s\\n' '{MARK}'").unwrap();
        self.stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            match self.lines.recv_timeout(COMMAND_TIMEOUT) {
                Ok(line) if line == MARK => break,
                Ok(line) => out.push(line),
                Err(e) => {
                    let _ = self.child.kill();
                    panic!("no end of `{command}` within {COMMAND_TIMEOUT:?} ({e}); output so far: {out:#?}");
                }
            }
        }
        // Drop the newline printed before the mark when the output ended in one.
        if out.last().is_some_and(|l| l.is_empty()) {
            out.pop();
        }
        out
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn readme_console_blocks_run_in_order() {
    let readme = std::fs::read_to_string(README).expect("read README.md");
    let steps = parse(&readme);
    assert!(
        steps.len() >= 20
            && steps.iter().any(|s| s.command.starts_with("curl"))
            && steps.iter().any(|s| s.command.starts_with("ringkv")),
        "expected the README's curl and CLI examples in console blocks, found {steps:#?}"
    );

    // As `ringkv dev` starts it: 3 nodes, N = 3, R = W = 2.
    let cluster = Cluster::start(3, &["--n=3", "--r=2", "--w=2"]);
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.http).collect();
    let rewrite = |text: &str| {
        ports
            .iter()
            .enumerate()
            .fold(text.to_string(), |t, (i, port)| {
                t.replace(
                    &format!("127.0.0.1:{}", 8001 + i),
                    &format!("127.0.0.1:{port}"),
                )
            })
    };

    let work = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(work.path(), &cluster.nodes[0].url());
    for step in &steps {
        let actual = shell.run(&rewrite(&step.command));
        let expected: Vec<String> = step.expected.iter().map(|l| rewrite(l)).collect();
        let (expected, actual) = (trimmed(&expected), trimmed(&actual));
        let same = expected.len() == actual.len()
            && expected.iter().zip(actual).all(|(e, a)| line_matches(e, a));
        if !same {
            let first = expected
                .iter()
                .zip(actual)
                .position(|(e, a)| !line_matches(e, a))
                .unwrap_or(expected.len().min(actual.len()));
            panic!(
                "README.md:{}: `{}` printed something else than the README shows \
                 (first difference at output line {}).\n--- README ---\n{}\n--- actual ---\n{}\n",
                step.line,
                step.command,
                first + 1,
                expected.join("\n"),
                actual.join("\n"),
            );
        }
    }
}

#[test]
fn placeholders_match_only_their_shape() {
    assert!(line_matches(
        "x-ringkv-context: <context>",
        "x-ringkv-context: Ab6g2a4OARBuMX4xNzk2MTY3NDk1Nzk3AQ"
    ));
    assert!(!line_matches("context: <context>", "context: "));
    assert!(!line_matches("context: <context>", "context: a b"));
    assert!(line_matches(
        "--- sibling 1, written <time> ---",
        "--- sibling 1, written 2026-12-01T23:25:29.425Z ---"
    ));
    assert!(!line_matches("written: <time>", "written: 2026-12-01"));
    assert!(line_matches(
        "date: <date>",
        "date: Tue, 01 Dec 2026 23:25:21 GMT"
    ));
    assert!(line_matches(
        "--<boundary>--",
        "--ringkv-6aa1da5f2d556eb0--"
    ));
    assert!(!line_matches("--<boundary>--", "--ringkv-siblings-0--"));
    assert!(line_matches(r#"[<ms>,<ms>]"#, "[1796167521324,17]"));
    assert!(!line_matches("hello", "hello!"));
    assert!(line_matches("<pid>", "<pid>"));
}

#[test]
fn console_blocks_parse_into_commands_and_output() {
    let text = "```sh\n$ not run\n```\n```console\n$ a \\\n  b\none\n\n$ c\n```\n";
    let steps = parse(text);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0].command, "a \\\n  b");
    assert_eq!(steps[0].expected, ["one", ""]);
    assert_eq!(steps[0].line, 5);
    assert_eq!(steps[1].command, "c");
    assert!(steps[1].expected.is_empty());
}
