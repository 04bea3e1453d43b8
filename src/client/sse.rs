//! A line-based Server-Sent Events reader: comments, CR/LF/CRLF line ends, multi-line data,
//! UTF-8 split across chunks (lines are decoded only once complete). A line or an event longer
//! than the parser's limit is an error, never an unbounded buffer.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub(crate) event: Option<String>,
    pub(crate) data: String,
}

/// A line or event grew past the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLong;

#[derive(Debug)]
pub(crate) struct SseParser {
    /// The longest line, and the most data in one event, in bytes.
    limit: usize,
    line: Vec<u8>,
    data: String,
    event: Option<String>,
    has_data: bool,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to it.
    skip_lf: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_limit(usize::MAX)
    }
}

impl SseParser {
    pub(crate) fn with_limit(limit: usize) -> Self {
        Self {
            limit,
            line: Vec::new(),
            data: String::new(),
            event: None,
            has_data: false,
            skip_lf: false,
        }
    }

    /// Feed bytes as they arrive; complete events are pushed to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), TooLong> {
        let mut rest = chunk;
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(b'\n') = rest.first() {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.push_line_bytes(&rest[..pos])?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
            if self.data.len() > self.limit {
                return Err(TooLong);
            }
            if rest[pos] == b'\r' {
                match rest.get(pos + 1) {
                    Some(b'\n') => rest = &rest[pos + 2..],
                    Some(_) => rest = &rest[pos + 1..],
                    None => {
                        self.skip_lf = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[pos + 1..];
            }
        }
        self.push_line_bytes(rest)
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) -> Result<(), TooLong> {
        if self.line.len().saturating_add(bytes.len()) > self.limit {
            return Err(TooLong);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// End of stream: an unterminated last line and a pending event are still delivered
    /// (some servers omit the final blank line).
    pub(crate) fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.dispatch(out);
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.has_data = false;
        self.event = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        p.finish(&mut out);
        out
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    const SAMPLE: &str = ": keep-alive comment\r\n\r\ndata: {\"a\":\"h\u{e9}llo \u{1f600}\"}\r\n\r\nevent: error\ndata: line one\ndata: line two\n\ndata:[DONE]\r\r";

    #[test]
    fn parses_comments_crlf_multiline_and_event_names() {
        let events = parse_all(&[SAMPLE.as_bytes()]);
        assert_eq!(
            data(&events),
            vec![
                "{\"a\":\"h\u{e9}llo \u{1f600}\"}",
                "line one\nline two",
                "[DONE]"
            ]
        );
        assert_eq!(events[1].event.as_deref(), Some("error"));
        assert_eq!(events[0].event, None);
    }

    #[test]
    fn split_at_every_byte_offset_gives_the_same_events() {
        let bytes = SAMPLE.as_bytes();
        let whole = parse_all(&[bytes]);
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(parse_all(&[a, b]), whole, "split at {i}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&singles), whole);
    }

    #[test]
    fn a_line_or_an_event_past_the_limit_is_an_error() {
        let mut out = Vec::new();
        let mut p = SseParser::with_limit(12);
        assert_eq!(p.feed(b"data: 12345", &mut out), Ok(()));
        assert_eq!(p.feed(b"6789", &mut out), Err(TooLong));
        let mut p = SseParser::with_limit(12);
        assert_eq!(
            p.feed(b"data: 12345\ndata: 12345\ndata: 1\n", &mut out),
            Err(TooLong)
        );
        let mut p = SseParser::with_limit(12);
        assert_eq!(p.feed(b"data: 12345\n\ndata: 12345\n\n", &mut out), Ok(()));
    }

    #[test]
    fn unterminated_last_event_is_delivered() {
        assert_eq!(data(&parse_all(&[b"data: x"])), vec!["x"]);
        assert!(parse_all(&[b": only a comment\n\n"]).is_empty());
    }
}
