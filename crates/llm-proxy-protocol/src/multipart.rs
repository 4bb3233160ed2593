//! Finding the `model` field of a `multipart/form-data` body (RFC 7578) while it is still arriving,
//! so the gateway can route on it and rewrite it in place without holding the file parts it has
//! not read yet.
//!
//! A general multipart parser (multer) yields each field's value but not where it sits in the raw
//! bytes, and the rewrite needs exactly that: this scanner walks the parts' delimiters and headers
//! over the bytes read so far and reports the byte range of the `model` value. It resumes where
//! it stopped, so a file part before `model` is searched once, however many reads it arrives in.

use memchr::memmem;

/// Longest header block of one part: a form field's headers are a line or two.
const MAX_PART_HEADERS: usize = 16 * 1024;

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<&str> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim().eq_ignore_ascii_case("boundary").then(|| value.trim().trim_matches('"')).filter(|b| !b.is_empty())
    })
}

/// Where the `model` value is in the bytes scanned: `bytes[start..end]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelField {
    pub start: usize,
    pub end: usize,
    pub value: String,
}

/// What the bytes read so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Not yet known: read more.
    More,
    Found(ModelField),
    /// The body ended (its closing delimiter, or the end of the input) without a `model` field.
    Missing,
    /// Not multipart as its boundary says; the reason, for the client.
    Malformed(&'static str),
}

#[derive(Debug)]
enum Position {
    /// Before the first delimiter (a preamble may precede it).
    Start,
    /// Just after a delimiter, at `at`: the body's end (`--`) or a part's headers follow.
    Delimited { at: usize },
    /// In a part's content, from `start`; the next delimiter is searched for from `search_from`.
    Content { model: bool, start: usize, search_from: usize },
}

/// Scans one body; call `scan` with all the bytes read so far each time more arrive.
#[derive(Debug)]
pub struct ModelFieldScan {
    /// `\r\n--boundary`: what ends every part.
    delimiter: Vec<u8>,
    position: Position,
}

impl ModelFieldScan {
    pub fn new(boundary: &str) -> Self {
        Self { delimiter: format!("\r\n--{boundary}").into_bytes(), position: Position::Start }
    }

    /// Scans `bytes` (everything read so far, the same prefix each time); `ended` says no more
    /// will come.
    pub fn scan(&mut self, bytes: &[u8], ended: bool) -> Scan {
        let scan = self.step(bytes);
        match scan {
            Scan::More if ended => Scan::Malformed("the multipart body ends in the middle of a part"),
            other => other,
        }
    }

    fn step(&mut self, bytes: &[u8]) -> Scan {
        let d = self.delimiter.len();
        loop {
            match self.position {
                Position::Start => {
                    // The first delimiter may open the body, without the line break before it.
                    if bytes.len() < d - 2 {
                        return Scan::More;
                    }
                    if bytes.starts_with(&self.delimiter[2..]) {
                        self.position = Position::Delimited { at: d - 2 };
                        continue;
                    }
                    match memmem::find(bytes, &self.delimiter) {
                        Some(i) => self.position = Position::Delimited { at: i + d },
                        None => return Scan::More,
                    }
                }
                Position::Delimited { at } => {
                    let Some(next) = bytes.get(at..at + 2) else { return Scan::More };
                    if next == b"--" {
                        return Scan::Missing;
                    }
                    if next != b"\r\n" {
                        return Scan::Malformed("a multipart delimiter is not followed by a line break");
                    }
                    // The headers end at an empty line; a part without headers starts with it.
                    let Some(end) = memmem::find(&bytes[at..], b"\r\n\r\n") else {
                        if bytes.len() - at > MAX_PART_HEADERS {
                            return Scan::Malformed("a multipart part's headers are too long");
                        }
                        return Scan::More;
                    };
                    let Ok(headers) = std::str::from_utf8(&bytes[at + 2..at + end]) else {
                        return Scan::Malformed("a multipart part's headers are not UTF-8");
                    };
                    let Some(name) = field_name(headers) else {
                        return Scan::Malformed("a multipart part has no `content-disposition: form-data; name=…`");
                    };
                    let start = at + end + 4;
                    self.position = Position::Content { model: name == "model", start, search_from: start };
                }
                Position::Content { model, start, search_from } => {
                    let Some(i) = bytes.get(search_from..).and_then(|rest| memmem::find(rest, &self.delimiter)) else {
                        // The delimiter may straddle this read and the next.
                        let search_from = bytes.len().saturating_sub(d - 1).max(start);
                        self.position = Position::Content { model, start, search_from };
                        return Scan::More;
                    };
                    let end = search_from + i;
                    if model {
                        return match std::str::from_utf8(&bytes[start..end]) {
                            Ok(value) => Scan::Found(ModelField { start, end, value: value.to_string() }),
                            Err(_) => Scan::Malformed("the `model` field is not UTF-8"),
                        };
                    }
                    self.position = Position::Delimited { at: end + d };
                }
            }
        }
    }
}

/// The `name` of a part's `content-disposition: form-data; name="…"` header.
fn field_name(headers: &str) -> Option<&str> {
    headers.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if !key.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        value.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("name").then(|| v.trim().trim_matches('"'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, filename, content) in parts {
            out.extend_from_slice(b"--XyZ\r\n");
            let file = filename.map(|f| format!("; filename=\"{f}\"")).unwrap_or_default();
            out.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"{file}\r\n").as_bytes());
            if filename.is_some() {
                out.extend_from_slice(b"Content-Type: audio/mpeg\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(content);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        out
    }

    /// Feeds `bytes` in pieces of `sizes` (cycled), as a network would.
    fn scan_in_pieces(bytes: &[u8], sizes: &[usize]) -> Scan {
        let mut scan = ModelFieldScan::new("XyZ");
        let mut read = 0;
        for size in sizes.iter().cycle() {
            read = (read + size.max(&1)).min(bytes.len());
            match scan.scan(&bytes[..read], read == bytes.len()) {
                Scan::More => continue,
                other => return other,
            }
        }
        unreachable!()
    }

    #[test]
    fn the_boundary_is_read_quoted_or_not() {
        assert_eq!(boundary("multipart/form-data; boundary=abc"), Some("abc"));
        assert_eq!(boundary("Multipart/Form-Data;boundary=\"a b\""), Some("a b"));
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn the_model_is_found_before_or_after_a_file() {
        let file = vec![7u8; 10_000];
        for parts in [
            vec![("model", None, &b"openai/whisper-1"[..]), ("file", Some("a.mp3"), &file[..])],
            vec![("file", Some("a.mp3"), &file[..]), ("model", None, &b"openai/whisper-1"[..])],
        ] {
            let bytes = body(&parts);
            let Scan::Found(f) = scan_in_pieces(&bytes, &[bytes.len()]) else { panic!() };
            assert_eq!(f.value, "openai/whisper-1");
            assert_eq!(&bytes[f.start..f.end], b"openai/whisper-1");
        }
    }

    #[test]
    fn a_body_without_model_or_out_of_shape_says_so() {
        let bytes = body(&[("prompt", None, b"hi")]);
        assert_eq!(scan_in_pieces(&bytes, &[3]), Scan::Missing);
        assert!(matches!(scan_in_pieces(b"--XyZ\r\nno header end", &[100]), Scan::Malformed(_)));
        assert!(matches!(scan_in_pieces(b"--XyZ\r\nX-Other: 1\r\n\r\nv\r\n--XyZ--", &[100]), Scan::Malformed(_)));
        assert!(matches!(scan_in_pieces(b"not multipart at all", &[4]), Scan::Malformed(_)));
    }

    proptest! {
        /// However the body is cut into reads, the same range is found.
        #[test]
        fn any_fragmentation_finds_the_same_field(sizes in proptest::collection::vec(1usize..40, 1..8),
                                                  file in proptest::collection::vec(any::<u8>(), 0..300)) {
            let bytes = body(&[("image", Some("x.png"), &file[..]), ("model", None, b"dall-e-2"), ("n", None, b"1")]);
            let Scan::Found(f) = scan_in_pieces(&bytes, &sizes) else { panic!("not found") };
            prop_assert_eq!(&bytes[f.start..f.end], b"dall-e-2");
        }
    }
}
