//! The emulated Files endpoints: `POST /files` (multipart, `CreateFileRequest`) and
//! `GET /files` (`ListFilesResponse`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::{FileRec, State, error, reply};

/// `multipart/form-data` with a `purpose` field and a `file` part.
pub(super) fn upload(s: &mut State, content_type: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let Some(boundary) = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
    else {
        return error(StatusCode::BAD_REQUEST, "expected multipart/form-data");
    };
    let delimiter = format!("--{boundary}");
    let mut purpose = None;
    let mut file = None;
    for part in split(body, delimiter.as_bytes()).into_iter().skip(1) {
        if part.starts_with(b"--") {
            break;
        }
        let Some(head_end) = part.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..head_end]).into_owned();
        let mut content = &part[head_end + 4..];
        content = content.strip_suffix(b"\r\n").unwrap_or(content);
        if head.contains("name=\"purpose\"") {
            purpose = Some(String::from_utf8_lossy(content).into_owned());
        } else if head.contains("name=\"file\"") {
            let filename = head
                .split("filename=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("upload")
                .to_owned();
            file = Some((filename, content.to_vec()));
        }
    }
    let (Some(purpose), Some((filename, bytes))) = (purpose, file) else {
        return error(StatusCode::BAD_REQUEST, "`file` and `purpose` are required");
    };
    if purpose != "batch" {
        return error(StatusCode::BAD_REQUEST, "purpose must be batch");
    }
    s.next += 1;
    let id = format!("file-{:06}", s.next);
    let record = FileRec {
        filename: filename.clone(),
        purpose: purpose.clone(),
        created_at: s.clock,
        bytes,
    };
    let answer = json!({
        "id": id, "object": "file", "bytes": record.bytes.len(), "created_at": record.created_at,
        "expires_at": null, "filename": filename, "purpose": purpose, "status": "processed",
    });
    s.files.insert(id, record);
    reply(StatusCode::OK, &answer)
}

fn split<'a>(haystack: &'a [u8], needle: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    // Jump from one occurrence of the needle's first byte to the next (fast even unoptimised).
    while let Some(offset) = haystack[i..].iter().position(|b| *b == needle[0]) {
        i += offset;
        if haystack[i..].starts_with(needle) {
            out.push(&haystack[start..i]);
            i += needle.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&haystack[start..]);
    out
}

/// `GET /files?purpose=&limit=&order=&after=` (`ListFilesResponse`; `limit` 1..10,000, default
/// 10,000; `order` by `created_at`, default `desc`).
pub(super) fn list_files(s: &State, query: &str) -> Response<Full<Bytes>> {
    let mut purpose = None;
    let mut after = None;
    let mut limit = 10_000usize;
    let mut ascending = false;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("purpose", v)) => purpose = Some(v.to_owned()),
            Some(("after", v)) => after = Some(v.to_owned()),
            Some(("limit", v)) => limit = v.parse().unwrap_or(0),
            Some(("order", v)) => ascending = v == "asc",
            _ => {}
        }
    }
    if !(1..=10_000).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, "limit must be between 1 and 10000");
    }
    // Ids grow with creation time.
    let mut files: Vec<(&String, &FileRec)> = s
        .files
        .iter()
        .filter(|(_, f)| purpose.as_ref().is_none_or(|p| &f.purpose == p))
        .collect();
    files.sort_by(|a, b| (a.1.created_at, a.0).cmp(&(b.1.created_at, b.0)));
    if !ascending {
        files.reverse();
    }
    let start = after
        .and_then(|a| files.iter().position(|(id, _)| **id == a).map(|p| p + 1))
        .unwrap_or(0);
    let page: Vec<Value> = files
        .iter()
        .skip(start)
        .take(limit)
        .map(|(id, f)| json!({"id": id, "object": "file", "bytes": f.bytes.len(), "created_at": f.created_at,
            "expires_at": null, "filename": f.filename, "purpose": f.purpose, "status": "processed"}))
        .collect();
    let has_more = start + page.len() < files.len();
    reply(
        StatusCode::OK,
        &json!({"object": "list", "data": page, "first_id": page.first().map(|f| f["id"].clone()),
            "last_id": page.last().map(|f| f["id"].clone()), "has_more": has_more}),
    )
}
