//! Backups going out: `GET /v1.0/backups/{f}` (the BackupFile with `Data`, base64 streamed)
//! and `GET /v1.0/backups/{f}/download` (the raw file, with a single `Range` honoured). Both
//! stream from one open file in bounded chunks, so memory stays flat whatever the size.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::StreamExt;

use super::errors::{ApiError, ErrorKind};
use super::{ApiState, Weight};
use crate::{BackupFile, Error};

/// Bytes of backup read per chunk when streaming; a multiple of 3, so that each chunk's
/// base64 has no padding and chunks concatenate into one valid encoding.
const STREAM_CHUNK_BYTES: usize = 3 * 64 * 1024;

/// The guest's view of a backup, the file opened for reading (right after the guest's
/// answer, on the same blocking thread, through the backup directory) and its length.
async fn open_backup(
    state: &ApiState,
    path: Result<Path<String>, PathRejection>,
) -> Result<(BackupFile, std::fs::File, u64), ApiError> {
    let name = super::routes::filename(path)?;
    state
        .call_named(Weight::Light, name, |runtime, name| {
            let backup = runtime.read(name)?;
            let file = runtime.capabilities().backups.open_for_reading(name)?;
            let length = file
                .metadata()
                .map_err(|e| Error::Io(format!("stat {name}: {e}")))?
                .len();
            Ok((backup, file, length))
        })
        .await
}

/// `GET /v1.0/backups/{f}`: the BackupFile with `Data`, the whole file in base64, streamed
/// so the server's memory stays flat whatever the backup's size.
pub(super) async fn read(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (backup, file, length) = open_backup(&state, path).await?;
    let mut head =
        serde_json::to_vec(&backup).map_err(|e| ApiError::internal(format!("serialize: {e}")))?;
    head.pop(); // the closing brace: `Data` goes last, as LiteGraph orders it
    head.extend_from_slice(b",\"Data\":\"");
    let tail: &[u8] = b"\"}";
    let encoded = length.div_ceil(3) * 4;
    let content_length = head.len() as u64 + encoded + tail.len() as u64;
    let chunks = file_chunks(file, 0, length, |chunk| Bytes::from(BASE64.encode(chunk)));
    let stream = futures_util::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(chunks)
        .chain(futures_util::stream::once(async move {
            Ok(Bytes::from_static(tail))
        }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, content_length)
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(format!("build a response: {e}")))
}

/// `GET /v1.0/backups/{f}/download`: the raw file, for `curl -o` and large backups, with a
/// single `Range` honoured (`bytes=a-b`, `bytes=a-`, `bytes=-n`); several ranges get the
/// whole file.
pub(super) async fn download(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (backup, file, length) = open_backup(&state, path).await?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match byte_range(range, length) {
        RangeRequest::Whole => (StatusCode::OK, 0, length),
        RangeRequest::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        RangeRequest::Unsatisfiable => {
            let mut response = ApiError::described(
                ErrorKind::RangeNotSatisfiable,
                format!("The backup is {length} bytes long."),
            )
            .into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{length}")).expect("ASCII"),
            );
            return Ok(response);
        }
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{}\"", backup.sha256_hash))
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(&backup.filename),
        );
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{length}", end - 1),
        );
    }
    let chunks = file_chunks(file, start, end, Bytes::copy_from_slice);
    response
        .body(Body::from_stream(chunks))
        .map_err(|e| ApiError::internal(format!("build a response: {e}")))
}

/// What a `Range` header asks of a file of some length (RFC 9110, section 14).
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// The whole file: no range, several ranges, or a header that does not parse (which
    /// RFC 9110 says to ignore).
    Whole,
    /// Bytes `start..end` (end exclusive).
    Part(u64, u64),
    /// A well-formed range that lies beyond the file: 416.
    Unsatisfiable,
}

fn byte_range(header: Option<&str>, length: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let (start, end) = match (number(first.trim()), number(last.trim())) {
        (None, Some(suffix)) if first.trim().is_empty() => {
            if suffix == 0 {
                return RangeRequest::Unsatisfiable;
            }
            (length.saturating_sub(suffix), length)
        }
        (Some(start), None) if last.trim().is_empty() => (start, length),
        (Some(start), Some(last)) if last >= start => (start, last.saturating_add(1).min(length)),
        _ => return RangeRequest::Whole,
    };
    if start < end {
        RangeRequest::Part(start, end)
    } else {
        RangeRequest::Unsatisfiable
    }
}

/// `attachment; filename="..."`, with anything not plain ASCII escaped RFC 5987-style.
fn content_disposition(name: &str) -> HeaderValue {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ');
    let value = if plain {
        format!("attachment; filename=\"{name}\"")
    } else {
        let mut encoded = String::new();
        for byte in name.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                encoded.push(char::from(byte));
            } else {
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
        format!("attachment; filename*=UTF-8''{encoded}")
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Streams bytes `start..end` of `file` in bounded chunks, each transformed by `encode`,
/// reading on blocking threads; a short file ends the stream with an error rather than
/// sending fewer bytes than the `Content-Length` promised.
fn file_chunks(
    file: std::fs::File,
    start: u64,
    end: u64,
    encode: fn(&[u8]) -> Bytes,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::try_unfold(
        (Some(file), start, true),
        move |(file, position, first)| async move {
            let Some(mut file) = file else {
                return Ok(None);
            };
            if position >= end {
                return Ok(None);
            }
            let want = (end - position).min(STREAM_CHUNK_BYTES as u64) as usize;
            let (file, chunk) = tokio::task::spawn_blocking(move || {
                if first {
                    file.seek(SeekFrom::Start(position))?;
                }
                let mut chunk = vec![0; want];
                file.read_exact(&mut chunk)?;
                Ok::<_, std::io::Error>((file, chunk))
            })
            .await
            .map_err(std::io::Error::other)??;
            let next = position + want as u64;
            Ok(Some((encode(&chunk), (Some(file), next, false))))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeRequest::{Part, Unsatisfiable, Whole};
        let range = |header: &str| byte_range(Some(header), 100);
        assert_eq!(byte_range(None, 100), Whole);
        assert_eq!(range("bytes=0-9"), Part(0, 10));
        assert_eq!(range("bytes=90-"), Part(90, 100));
        assert_eq!(range("bytes=-10"), Part(90, 100));
        assert_eq!(range("bytes=-200"), Part(0, 100));
        assert_eq!(range("bytes=50-500"), Part(50, 100));
        assert_eq!(range("bytes=100-"), Unsatisfiable);
        assert_eq!(range("bytes=-0"), Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "bytes=9-3",
            "items=0-1",
            "bytes=x-1",
            "bytes=-",
            "bytes=+1-2",
            "junk",
        ] {
            assert_eq!(range(ignored), Whole, "{ignored}");
        }
    }

    #[test]
    fn content_disposition_is_always_a_valid_header() {
        assert_eq!(content_disposition("x.db"), "attachment; filename=\"x.db\"");
        assert_eq!(
            content_disposition("日本.db"),
            "attachment; filename*=UTF-8''%E6%97%A5%E6%9C%AC.db"
        );
        assert_eq!(
            content_disposition("a\"b.db"),
            "attachment; filename*=UTF-8''a%22b.db"
        );
    }
}
