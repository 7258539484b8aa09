//! Who holds a local TCP port: the process listening on it, found through
//! `/proc` (Linux), so `dev` can say what took the port it needs.
//!
//! `/proc/net/tcp` and `/proc/net/tcp6` list sockets with their local
//! address and inode; a process holds the socket if one of its
//! `/proc/<pid>/fd/*` links reads `socket:[<inode>]`. Processes of other
//! users may be unreadable: then the answer is `None`, never an error. This
//! module only reads `/proc`; it never signals or changes anything.

use std::fs;

/// The pid and command line of the process listening on `port`, if it can
/// be found.
pub fn port_owner(port: u16) -> Option<(u32, String)> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .find_map(|text| listening_inode(&text, port))?;
    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.to_str() == Some(&target)));
        if holds {
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let words: Vec<String> = cmdline
                .split(|&b| b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            return Some((pid, words.join(" ")));
        }
    }
    None
}

/// The inode of the socket listening (state `0A`) on `port` in a
/// `/proc/net/tcp`-format table.
fn listening_inode(table: &str, port: u16) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let state = fields.get(3)?;
        let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
        (local_port == port && *state == "0A").then(|| fields.get(9)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_socket_in_a_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n\
           1: 0100007F:1F42 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inode(table, 0x1F41), Some(4242));
        assert_eq!(listening_inode(table, 0x1F42), None, "not listening");
        assert_eq!(listening_inode(table, 1), None);
    }

    #[test]
    fn finds_this_process_as_the_owner_of_its_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (pid, _) = port_owner(port).expect("this process is found");
        assert_eq!(pid, std::process::id());
    }
}
