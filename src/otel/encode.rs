//! OTLP trace export bodies, written by hand: an `ExportTraceServiceRequest` in protobuf (the
//! OTLP/HTTP default, `http/protobuf`, and the only encoding some receivers such as Arize Phoenix
//! accept) or in OTLP/JSON (`http/json`). Only the fields qwen fills are written; field numbers
//! are those of `opentelemetry/proto/trace/v1/trace.proto` and `common/v1/common.proto`.

use serde_json::{Value, json};

use super::{AttrValue, Kind, SpanData, StatusCode};

/// The resource and scope every span of a run shares.
pub(crate) struct Resource<'a> {
    pub(crate) attributes: &'a [(String, AttrValue)],
    pub(crate) scope: &'a str,
    pub(crate) version: &'a str,
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "each byte takes the low seven bits"
)]
fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(buf, field, 2);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn message(buf: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes(buf, field, &inner);
}

fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    key(buf, field, 1);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    key(buf, field, 0);
    varint(buf, v);
}

/// `AnyValue`: string 1, bool 2, int 3, double 4, array 5.
fn any_value(buf: &mut Vec<u8>, value: &AttrValue) {
    match value {
        AttrValue::Str(s) => bytes(buf, 1, s.as_bytes()),
        AttrValue::Bool(b) => uint(buf, 2, u64::from(*b)),
        #[allow(
            clippy::cast_sign_loss,
            reason = "int64 is sent as its two's complement varint"
        )]
        AttrValue::Int(i) => uint(buf, 3, *i as u64),
        AttrValue::F64(f) => fixed64(buf, 4, f.to_bits()),
        AttrValue::StrList(items) => message(buf, 5, |array| {
            for item in items {
                message(array, 1, |v| bytes(v, 1, item.as_bytes()));
            }
        }),
    }
}

/// `KeyValue`: key 1, value 2.
fn attribute(buf: &mut Vec<u8>, field: u32, name: &str, value: &AttrValue) {
    message(buf, field, |kv| {
        bytes(kv, 1, name.as_bytes());
        message(kv, 2, |v| any_value(v, value));
    });
}

fn kind_number(kind: Kind) -> u64 {
    match kind {
        Kind::Internal => 1,
        Kind::Client => 3,
    }
}

fn status_number(code: StatusCode) -> u64 {
    match code {
        StatusCode::Unset => 0,
        StatusCode::Error => 2,
    }
}

/// `Span`: `trace_id` 1, `span_id` 2, `parent_span_id` 4, name 5, kind 6, start 7, end 8,
/// attributes 9, status 15 (message 2, code 3).
fn span(buf: &mut Vec<u8>, s: &SpanData) {
    bytes(buf, 1, &s.trace_id.to_be_bytes());
    bytes(buf, 2, &s.span_id.to_be_bytes());
    if let Some(parent) = s.parent {
        bytes(buf, 4, &parent.to_be_bytes());
    }
    bytes(buf, 5, s.name.as_bytes());
    uint(buf, 6, kind_number(s.kind));
    fixed64(buf, 7, s.start);
    fixed64(buf, 8, s.end);
    for (name, value) in &s.attributes {
        attribute(buf, 9, name, value);
    }
    if s.status != StatusCode::Unset {
        message(buf, 15, |st| {
            if !s.status_message.is_empty() {
                bytes(st, 2, s.status_message.as_bytes());
            }
            uint(st, 3, status_number(s.status));
        });
    }
}

/// `ExportTraceServiceRequest { resource_spans = 1 }`, `ResourceSpans { resource = 1,
/// scope_spans = 2 }`, `ScopeSpans { scope = 1, spans = 2 }`, `InstrumentationScope { name = 1,
/// version = 2 }`.
pub(crate) fn protobuf(resource: &Resource<'_>, spans: &[SpanData]) -> Vec<u8> {
    let mut out = Vec::new();
    message(&mut out, 1, |rs| {
        message(rs, 1, |r| {
            for (name, value) in resource.attributes {
                attribute(r, 1, name, value);
            }
        });
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes(scope, 1, resource.scope.as_bytes());
                bytes(scope, 2, resource.version.as_bytes());
            });
            for s in spans {
                message(ss, 2, |b| span(b, s));
            }
        });
    });
    out
}

fn json_value(value: &AttrValue) -> Value {
    match value {
        AttrValue::Str(s) => json!({"stringValue": s}),
        AttrValue::Bool(b) => json!({"boolValue": b}),
        AttrValue::Int(i) => json!({"intValue": i.to_string()}),
        AttrValue::F64(f) => json!({"doubleValue": f}),
        AttrValue::StrList(items) => json!({"arrayValue": {"values":
            items.iter().map(|i| json!({"stringValue": i})).collect::<Vec<_>>()}}),
    }
}

fn json_attributes(attributes: &[(String, AttrValue)]) -> Vec<Value> {
    attributes
        .iter()
        .map(|(k, v)| json!({"key": k, "value": json_value(v)}))
        .collect()
}

/// The same request in OTLP/JSON: ids as lowercase hex, 64-bit integers as strings.
pub(crate) fn json(resource: &Resource<'_>, spans: &[SpanData]) -> Vec<u8> {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": format!("{:032x}", s.trace_id),
                "spanId": format!("{:016x}", s.span_id),
                "name": s.name,
                "kind": kind_number(s.kind),
                "startTimeUnixNano": s.start.to_string(),
                "endTimeUnixNano": s.end.to_string(),
                "attributes": json_attributes(&s.attributes),
            });
            if let Some(parent) = s.parent {
                span["parentSpanId"] = json!(format!("{parent:016x}"));
            }
            if s.status != StatusCode::Unset {
                span["status"] =
                    json!({"code": status_number(s.status), "message": s.status_message});
            }
            span
        })
        .collect();
    let request = json!({"resourceSpans": [{
        "resource": {"attributes": json_attributes(resource.attributes)},
        "scopeSpans": [{
            "scope": {"name": resource.scope, "version": resource.version},
            "spans": spans,
        }],
    }]});
    serde_json::to_vec(&request).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_protobuf_wire_format() {
        let mut buf = Vec::new();
        varint(&mut buf, 300);
        assert_eq!(buf, [0xac, 0x02]);
        let mut buf = Vec::new();
        bytes(&mut buf, 5, b"ab");
        assert_eq!(buf, [0x2a, 2, b'a', b'b']);
        let mut buf = Vec::new();
        uint(&mut buf, 3, u64::MAX);
        assert_eq!(
            buf.len(),
            11,
            "a negative int64 takes ten bytes after its key"
        );
    }

    #[test]
    fn a_span_is_encoded_with_its_ids_times_and_attributes() {
        let span = SpanData {
            trace_id: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
            span_id: 0x1112_1314_1516_1718,
            parent: Some(7),
            name: "chat m".into(),
            kind: Kind::Client,
            start: 1,
            end: 2,
            attributes: vec![("n".into(), AttrValue::Int(-1))],
            status: StatusCode::Error,
            status_message: "boom".into(),
        };
        let attributes = vec![("service.name".into(), AttrValue::Str("qwen".into()))];
        let resource = Resource {
            attributes: &attributes,
            scope: "qwen",
            version: "0",
        };
        let pb = protobuf(&resource, std::slice::from_ref(&span));
        let trace = span.trace_id.to_be_bytes();
        assert!(
            pb.windows(18)
                .any(|w| w[..2] == [0x0a, 16] && w[2..] == trace)
        );
        assert!(
            pb.windows(6)
                .any(|w| w == [0x2a, 6, b'c', b'h', b'a', b't'])
        );
        let doc: Value = serde_json::from_slice(&json(&resource, &[span])).expect("json");
        let s = &doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(s["parentSpanId"], "0000000000000007");
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(s["attributes"][0]["value"]["intValue"], "-1");
    }
}
