//! Maps MongoDB driver errors onto [`StoreError`] so that driver types never cross the port,
//! and recognises the duplicate-key errors that the writer treats as "already stored".

use crate::store::StoreError;
use mongodb::error::{Error, ErrorKind, InsertManyError, WriteFailure};

/// MongoDB's duplicate-key error code (E11000).
pub(super) const DUPLICATE_KEY: i32 = 11000;

/// Server codes meaning "not now, try again": state changes (stepdown, shutdown, not primary),
/// network-level failures reported by a mongos, time limits and write-concern timeouts.
/// 14031 is MongoDB's OutOfDiskSpace.
const UNAVAILABLE_CODES: [i32; 16] = [
    6, 7, 50, 64, 89, 91, 189, 262, 9001, 10058, 10107, 11600, 11602, 13435, 13436, 14031,
];

/// A server error that means its storage is full or failing (an outage until space or the disk
/// returns, never a bad batch): FerretDB answers `InternalError` (code 1) with SQLite's "database
/// or disk is full"; other servers say "No space left on device".
fn storage_failed(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "disk is full",
        "no space left",
        "disk i/o error",
        "out of disk space",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// Driver labels that mark an error as transient.
const TRANSIENT_LABELS: [&str; 4] = [
    "RetryableWriteError",
    "TransientTransactionError",
    "SystemOverloadedError",
    "RetryableError",
];

/// The port error for a driver error: duplicate keys → `Conflict`; unreachable, shutting down or
/// overloaded servers → `Unavailable`; everything else → `Other`.
pub(super) fn map_err(e: Error) -> StoreError {
    if let Some(message) = duplicate_key_message(&e) {
        return StoreError::Conflict(message);
    }
    if is_unavailable(&e) {
        StoreError::unavailable_from(e)
    } else {
        StoreError::other_from(e)
    }
}

fn is_unavailable(e: &Error) -> bool {
    let by_kind = match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => true,
        ErrorKind::Command(c) => UNAVAILABLE_CODES.contains(&c.code) || storage_failed(&c.message),
        ErrorKind::Write(WriteFailure::WriteError(w)) => storage_failed(&w.message),
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(errors),
            ..
        }) if errors.iter().any(|w| storage_failed(&w.message)) => true,
        ErrorKind::Write(WriteFailure::WriteConcernError(wc)) => {
            UNAVAILABLE_CODES.contains(&wc.code)
        }
        ErrorKind::InsertMany(InsertManyError {
            write_concern_error: Some(wc),
            ..
        }) => UNAVAILABLE_CODES.contains(&wc.code),
        _ => false,
    };
    by_kind || TRANSIENT_LABELS.iter().any(|label| e.contains_label(label))
}

/// Server codes for "this server does not implement that" (NotImplemented, CommandNotFound,
/// InvalidOptions): what a MongoDB-compatible server such as FerretDB answers for an option it
/// lacks.
const NOT_IMPLEMENTED_CODES: [i32; 3] = [238, 59, 72];

/// True when the server refused a command or option it does not implement.
pub(super) fn is_not_implemented(e: &Error) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Command(c) if NOT_IMPLEMENTED_CODES.contains(&c.code))
}

/// The server's message when `e` is (only) a duplicate-key violation.
fn duplicate_key_message(e: &Error) -> Option<String> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) if c.code == DUPLICATE_KEY => Some(c.message.clone()),
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY => {
            Some(w.message.clone())
        }
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(errors),
            write_concern_error: None,
            ..
        }) if !errors.is_empty() && errors.iter().all(|w| w.code == DUPLICATE_KEY) => {
            errors.first().map(|w| w.message.clone())
        }
        _ => None,
    }
}

/// True when `e` (from an unordered `insert_many`, or an `insert_one`) reports nothing but
/// duplicates of `_id`: every other document was inserted and the duplicates are already stored,
/// so the write as a whole succeeded. A duplicate on any other unique index is a real failure.
pub(super) fn only_id_duplicates(e: &Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(errors),
            write_concern_error: None,
            ..
        }) => {
            !errors.is_empty()
                && errors
                    .iter()
                    .all(|w| w.code == DUPLICATE_KEY && names_id_index(&w.message))
        }
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            w.code == DUPLICATE_KEY && names_id_index(&w.message)
        }
        _ => false,
    }
}

/// For an unordered `insert_many` that failed only on `_id` duplicates: the positions (in the
/// inserted list) of the documents refused as duplicates. `None` for any other failure.
pub(super) fn id_duplicate_indexes(e: &Error) -> Option<Vec<usize>> {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(errors),
            write_concern_error: None,
            ..
        }) if only_id_duplicates(e) => Some(errors.iter().map(|w| w.index).collect()),
        _ => None,
    }
}

/// The server says `E11000 duplicate key error collection: db.c index: _id_ dup key: {…}`; the
/// driver drops the structured `keyPattern`, so the index name in the message is what we have.
/// A message that names no index at all (some MongoDB-compatible servers) is read as `_id`,
/// since the analytics collections carry no other unique index.
fn names_id_index(message: &str) -> bool {
    message.contains("index: _id_ ")
        || message.ends_with("index: _id_")
        || !message.contains("index:")
}

/// Runs a `find` (or `aggregate`) and collects every document, with driver errors mapped.
pub(super) trait CollectAll {
    fn collect_all(
        self,
    ) -> impl Future<Output = crate::store::StoreResult<Vec<mongodb::bson::Document>>> + Send;
}

impl<F> CollectAll for F
where
    F: IntoFuture<Output = mongodb::error::Result<mongodb::Cursor<mongodb::bson::Document>>> + Send,
    F::IntoFuture: Send,
{
    fn collect_all(
        self,
    ) -> impl Future<Output = crate::store::StoreResult<Vec<mongodb::bson::Document>>> + Send {
        use futures::TryStreamExt;
        async move {
            self.await
                .map_err(map_err)?
                .try_collect()
                .await
                .map_err(map_err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{doc, from_document};
    use mongodb::error::{CommandError, WriteError};

    fn insert_many_error(errors: &[(i32, &str)]) -> Error {
        let write_errors: Vec<_> = errors
            .iter()
            .enumerate()
            .map(|(i, (code, msg))| doc! {"index": i as i32, "code": code, "errmsg": *msg})
            .collect();
        let failure: InsertManyError = from_document(doc! {"writeErrors": write_errors}).unwrap();
        Error::from(ErrorKind::InsertMany(failure))
    }

    fn command_error(code: i32, message: &str) -> Error {
        let c: CommandError =
            from_document(doc! {"code": code, "codeName": "X", "errmsg": message}).unwrap();
        Error::from(ErrorKind::Command(c))
    }

    const ID_DUP: &str = "E11000 duplicate key error collection: si.events index: _id_ dup key: { _id: ObjectId('65ba3b00') }";
    const EMAIL_DUP: &str = "E11000 duplicate key error collection: si.users index: email_1 dup key: { email: \"a@b.c\" }";

    #[test]
    fn duplicate_ids_in_an_unordered_insert_are_already_stored() {
        let e = insert_many_error(&[(DUPLICATE_KEY, ID_DUP), (DUPLICATE_KEY, ID_DUP)]);
        assert!(only_id_duplicates(&e));
        assert!(matches!(map_err(e), StoreError::Conflict(_)));
    }

    #[test]
    fn other_unique_indexes_and_other_write_errors_are_failures() {
        assert!(!only_id_duplicates(&insert_many_error(&[(
            DUPLICATE_KEY,
            EMAIL_DUP
        )])));
        let mixed = insert_many_error(&[
            (DUPLICATE_KEY, ID_DUP),
            (2, "Document can't have $ prefixed field names"),
        ]);
        assert!(!only_id_duplicates(&mixed));
        assert!(matches!(map_err(mixed), StoreError::Other { .. }));
    }

    #[test]
    fn duplicate_key_maps_to_conflict() {
        assert_eq!(
            map_err(command_error(DUPLICATE_KEY, EMAIL_DUP)),
            StoreError::Conflict(EMAIL_DUP.into())
        );
        assert_eq!(
            map_err(insert_many_error(&[(DUPLICATE_KEY, EMAIL_DUP)])),
            StoreError::Conflict(EMAIL_DUP.into())
        );
    }

    #[test]
    fn network_and_stepdown_errors_are_unavailable() {
        let io = Error::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(map_err(io).is_unavailable());
        let timeout = Error::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        ));
        assert!(map_err(timeout).is_unavailable());
        assert!(map_err(command_error(91, "ShutdownInProgress")).is_unavailable());
        assert!(map_err(command_error(10107, "not primary")).is_unavailable());
    }

    #[test]
    fn unimplemented_options_are_recognised() {
        assert!(is_not_implemented(&command_error(
            238,
            "Index option \"expireAfterSeconds\" is not implemented yet"
        )));
        assert!(!is_not_implemented(&command_error(
            DUPLICATE_KEY,
            EMAIL_DUP
        )));
        assert!(!is_not_implemented(&Error::custom("boom")));
    }

    #[test]
    fn everything_else_is_other() {
        assert!(matches!(
            map_err(command_error(2, "BadValue")),
            StoreError::Other { .. }
        ));
        assert!(matches!(
            map_err(Error::custom("boom")),
            StoreError::Other { .. }
        ));
    }

    #[test]
    fn a_duplicate_id_from_insert_one_is_recognised() {
        // `insert_one` reports a single write error (how `create_session` spots a taken id).
        let write = |message: &str| {
            let w: WriteError =
                from_document(doc! {"code": DUPLICATE_KEY, "errmsg": message}).unwrap();
            Error::from(ErrorKind::Write(WriteFailure::WriteError(w)))
        };
        const SESSION_DUP: &str = "E11000 duplicate key error collection: si.sessions index: _id_ dup key: { _id: \"s1\" }";
        assert!(only_id_duplicates(&write(SESSION_DUP)));
        assert!(!only_id_duplicates(&write(EMAIL_DUP)));
        assert!(matches!(
            map_err(write(SESSION_DUP)),
            StoreError::Conflict(_)
        ));
    }

    #[test]
    fn id_index_is_recognised_in_messages() {
        assert!(names_id_index(ID_DUP));
        assert!(names_id_index(
            "E11000 duplicate key error collection: a.b index: _id_"
        ));
        assert!(names_id_index("E11000 duplicate key error"));
        assert!(!names_id_index(EMAIL_DUP));
        assert!(!names_id_index(
            "E11000 duplicate key error collection: a.b index: _id_x_1 dup key: {}"
        ));
    }

    #[test]
    fn a_full_disk_is_an_outage_not_a_bad_batch() {
        let ferret = command_error(
            1,
            "[msg_insert.go:168 handler.(*Handler).MsgInsert] [db.go:167 fsql.(*DB).InTransaction] \
             database or disk is full (13)",
        );
        assert!(
            map_err(ferret).is_unavailable(),
            "FerretDB over a full SQLite file"
        );
        assert!(map_err(command_error(14031, "OutOfDiskSpace")).is_unavailable());
        assert!(!map_err(command_error(2, "BadValue: bad document")).is_unavailable());
    }
}
