//! Tests of the open-failure classification (one case per fjall error
//! kind seen when flipping bytes) and of panic payload text.

use super::*;
use fjall::{Error as F, LsmError as L};
use std::io::{Error as Io, ErrorKind};

#[test]
fn open_failures_that_mean_damage_are_classified_and_the_rest_are_not() {
    let cases: Vec<(F, Option<DamageKind>)> = vec![
        (F::InvalidVersion(None), Some(DamageKind::VersionMarker)),
        (
            F::Storage(L::InvalidVersion(252)),
            Some(DamageKind::ManifestOrTable),
        ),
        (
            F::Storage(L::InvalidHeader("Block")),
            Some(DamageKind::Table),
        ),
        (F::Storage(L::InvalidTrailer), Some(DamageKind::Table)),
        (
            F::JournalRecovery(fjall::JournalRecoveryError::ChecksumMismatch),
            Some(DamageKind::Journal),
        ),
        (
            F::Storage(L::Io(Io::from(ErrorKind::NotFound))),
            Some(DamageKind::MissingFile),
        ),
        (
            F::Io(Io::from_raw_os_error(22)), // EINVAL: "Invalid argument"
            Some(DamageKind::ImpossibleLength),
        ),
        (
            F::Storage(L::Io(Io::from(ErrorKind::UnexpectedEof))),
            Some(DamageKind::ImpossibleLength),
        ),
        (F::Unrecoverable, Some(DamageKind::Unrecoverable)),
        (
            F::Storage(L::Unrecoverable),
            Some(DamageKind::Unrecoverable),
        ),
        (F::Locked, None),
        (F::Poisoned, None),
        (F::Io(Io::from(ErrorKind::PermissionDenied)), None),
        (F::Storage(L::Io(Io::from(ErrorKind::StorageFull))), None),
    ];
    for (err, want) in cases {
        assert_eq!(classify_open_error(&err), want, "{err}");
    }
}

#[test]
fn every_kind_names_files() {
    let kinds = [
        DamageKind::VersionMarker,
        DamageKind::ManifestOrTable,
        DamageKind::Table,
        DamageKind::Journal,
        DamageKind::MissingFile,
        DamageKind::ImpossibleLength,
        DamageKind::Unrecoverable,
        DamageKind::Panicked,
    ];
    for kind in kinds {
        assert!(!kind.files().is_empty(), "{kind:?}");
    }
    assert!(DamageKind::Journal.files().contains(".jnl"));
}

#[test]
fn panic_payloads_become_text() {
    let payload = std::panic::catch_unwind(|| panic!("bad block {}", 7)).unwrap_err();
    assert_eq!(panic_text(&*payload), "bad block 7");
    let payload = std::panic::catch_unwind(|| std::panic::panic_any(3u8)).unwrap_err();
    assert_eq!(panic_text(&*payload), "no message");
}
