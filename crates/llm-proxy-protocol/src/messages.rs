//! `Messages<T>`: a request's `messages` array kept as JSON text, each message checked on the way
//! in but parsed only when a translation asks for it.
//!
//! A conversation is most of a chat body, and a passthrough only forwards it. Decoded into one map
//! per message (hundreds of bytes each with `preserve_order`), a 10 MB body of 300,000 short
//! messages took ~90 MB before anything was sent; as text it takes about its own size. Decoding
//! still checks what the gateway relies on (every message is an object with a string `role`, and
//! the protocol's other required fields are there) and names the offending field as before
//! (`messages[3].role`). Translations walk the array one message at a time (`try_for_each`), so
//! only one message is ever decoded at once.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::json::DecodeError;

/// What a protocol's message must carry: `role` (always, a string) and the fields named here.
pub trait MessageShape: DeserializeOwned {
    /// Required fields besides `role`; their values are only checked to be present.
    const REQUIRED: &'static [&'static str];
}

/// A `messages` array as the client's JSON text (re-written compactly: fields in the client's
/// order, values byte for byte). Shared, not copied, by clones: every
/// attempt of a route gets the same text.
pub struct Messages<T>(Arc<Inner<T>>);

struct Inner<T> {
    raw: Box<RawValue>,
    len: usize,
    /// The messages decoded, made on the first `iter` only (routing reads a few messages of
    /// some requests this way); translations use `try_for_each` instead.
    parsed: OnceLock<Vec<T>>,
}

impl<T> Messages<T> {
    fn new(raw: Box<RawValue>, len: usize) -> Self {
        Self(Arc::new(Inner { raw, len, parsed: OnceLock::new() }))
    }
}

impl<T: MessageShape> Messages<T> {
    pub fn len(&self) -> usize {
        self.0.len
    }

    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// The array's JSON text.
    pub fn raw(&self) -> &RawValue {
        &self.0.raw
    }

    /// The messages, decoded on first use and kept. Decodes the whole array: for a few messages of
    /// a big request prefer `try_for_each`.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.parsed.get_or_init(|| serde_json::from_str(self.0.raw.get()).unwrap_or_default()).iter()
    }

    /// Decodes the messages one at a time, in order, handing each to `f` with its index; stops at
    /// the first error. Only one decoded message is alive at a time.
    pub fn try_for_each<E>(&self, f: impl FnMut(usize, T) -> Result<(), E>) -> Result<(), E>
    where
        E: From<DecodeError>,
    {
        struct Each<T, F, E> {
            f: F,
            failed: Option<E>,
            _items: PhantomData<fn() -> T>,
        }
        impl<'de, T, F, E> Visitor<'de> for &mut Each<T, F, E>
        where
            T: DeserializeOwned,
            F: FnMut(usize, T) -> Result<(), E>,
        {
            type Value = ();

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of messages")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                let mut i = 0;
                while let Some(m) = seq.next_element::<T>()? {
                    if let Err(e) = (self.f)(i, m) {
                        self.failed = Some(e);
                        return Err(de::Error::custom("stopped"));
                    }
                    i += 1;
                }
                Ok(())
            }
        }
        let mut each = Each { f, failed: None, _items: PhantomData };
        let mut de = serde_json::Deserializer::from_str(self.0.raw.get());
        match de.deserialize_seq(&mut each) {
            Ok(()) => Ok(()),
            Err(e) => match each.failed {
                Some(failed) => Err(failed),
                None => Err(DecodeError { message: format!("messages: {e}"), param: Some("messages".into()) }.into()),
            },
        }
    }
}

impl<T: MessageShape + Serialize> Messages<T> {
    /// Messages built in code (tests, requests the gateway makes itself).
    pub fn from_items(items: &[T]) -> Result<Self, serde_json::Error> {
        Ok(Self::new(serde_json::value::to_raw_value(items)?, items.len()))
    }
}

impl<T> fmt::Debug for Messages<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messages").field("len", &self.0.len).field("bytes", &self.0.raw.get().len()).finish()
    }
}

impl<T> Clone for Messages<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Serialize for Messages<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.raw.serialize(s)
    }
}

impl<'de, T: MessageShape> Deserialize<'de> for Messages<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Array<T>(PhantomData<fn() -> T>);
        impl<'de, T: MessageShape> Visitor<'de> for Array<T> {
            type Value = (String, usize);

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of messages")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = String::from("[");
                let mut len = 0;
                while seq
                    .next_element_seed(Message::<T> { out: &mut out, first: len == 0, _items: PhantomData })?
                    .is_some()
                {
                    len += 1;
                }
                out.push(']');
                Ok((out, len))
            }
        }
        let (text, len) = d.deserialize_seq(Array::<T>(PhantomData))?;
        // Built from checked pieces, so this cannot fail; the check is serde_json's own.
        let raw = RawValue::from_string(text).map_err(de::Error::custom)?;
        Ok(Self::new(raw, len))
    }
}

/// One message, checked and appended to `out` as JSON text.
struct Message<'a, T> {
    out: &'a mut String,
    first: bool,
    _items: PhantomData<fn() -> T>,
}

impl<'de, T: MessageShape> DeserializeSeed<'de> for Message<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: MessageShape> Visitor<'de> for Message<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Written as it is read, fields in the client's order: no second buffer per message.
        if !self.first {
            self.out.push(',');
        }
        self.out.push('{');
        let mut role = false;
        let mut first_field = true;
        // Bit i: `T::REQUIRED[i]` was there (a protocol requires a handful of fields at most).
        let mut seen: u64 = 0;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if !std::mem::take(&mut first_field) {
                self.out.push(',');
            }
            push_json_string(self.out, &key);
            self.out.push(':');
            if key == "role" {
                if role {
                    return Err(de::Error::duplicate_field("role"));
                }
                role = true;
                let Key(value) = map.next_value::<Key<'de>>()?;
                push_json_string(self.out, &value);
                continue;
            }
            let value: Box<RawValue> = map.next_value()?;
            if let Some(i) = T::REQUIRED.iter().position(|r| *r == key) {
                seen |= 1 << i;
            }
            self.out.push_str(value.get());
        }
        if !role {
            return Err(de::Error::missing_field("role"));
        }
        if let Some(missing) = T::REQUIRED.iter().enumerate().find(|(i, _)| seen & (1 << i) == 0) {
            return Err(de::Error::missing_field(missing.1));
        }
        self.out.push('}');
        Ok(())
    }
}

/// A string that borrows from the input when it can (no escapes), else is owned.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Appends `s` as a JSON string: as it is when nothing in it needs escaping (keys and roles, almost
/// always), else escaped by serde_json.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else if let Ok(quoted) = serde_json::to_string(s) {
        // Writing a string into a String cannot fail.
        out.push_str(&quoted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::decode;
    use serde_json::{Map, Value, json};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct M {
        role: String,
        #[serde(flatten)]
        rest: Map<String, Value>,
    }
    impl MessageShape for M {
        const REQUIRED: &'static [&'static str] = &["content"];
    }

    #[derive(Debug, Deserialize)]
    struct Body {
        messages: Messages<M>,
    }

    #[test]
    fn keeps_every_field_and_value() {
        let body = br#"{"messages":[{"content":[{"type":"text","text":"a\"b"}],"role":"user","name":"x"},
            {"role":"assistant","content":"hi \u00e9","tool_calls":[{"id":"1"}]}]}"#;
        let b: Body = decode(body).unwrap();
        assert_eq!(b.messages.len(), 2);
        let want: Value = serde_json::from_slice::<Value>(body).unwrap()["messages"].clone();
        assert_eq!(serde_json::to_value(&b.messages).unwrap(), want);
        assert!(b.messages.raw().get().starts_with(r#"[{"content":[{"type":"#), "fields keep their order");
        let roles: Vec<&str> = b.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant"]);
    }

    #[test]
    fn escaped_keys_and_roles_survive() {
        let body = br#"{"messages":[{"ro\u006ce":"us\"er","c\\t":"x","content":"y"}]}"#;
        let b: Body = decode(body).unwrap();
        let want: Value = serde_json::from_slice::<Value>(body).unwrap()["messages"].clone();
        assert_eq!(serde_json::to_value(&b.messages).unwrap(), want);
        assert_eq!(b.messages.iter().next().unwrap().role, "us\"er");
    }

    #[test]
    fn bad_messages_name_the_field() {
        let err =
            decode::<Body>(br#"{"messages":[{"role":"user","content":""},{"role":1,"content":""}]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].role"));
        let err = decode::<Body>(br#"{"messages":[{"content":""}]}"#).unwrap_err();
        assert!(err.message.contains("missing field `role`"), "{}", err.message);
        assert_eq!(err.param.as_deref(), Some("messages[0]"));
        let err = decode::<Body>(br#"{"messages":[{"role":"user"}]}"#).unwrap_err();
        assert!(err.message.contains("missing field `content`"), "{}", err.message);
        let err = decode::<Body>(br#"{"messages":["hi"]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0]"));
        let err = decode::<Body>(br#"{"messages":[{"role":"user","role":"system","content":""}]}"#).unwrap_err();
        assert!(err.message.contains("duplicate field `role`"), "{}", err.message);
    }

    #[test]
    fn walks_messages_one_at_a_time() {
        let b: Body =
            decode(br#"{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}"#).unwrap();
        let mut seen = Vec::new();
        b.messages
            .try_for_each(|i, m: M| {
                seen.push((i, m.rest["content"].clone()));
                Ok::<_, DecodeError>(())
            })
            .unwrap();
        assert_eq!(seen, [(0, json!("a")), (1, json!("b"))]);
        let stopped = b
            .messages
            .try_for_each(|i, _| if i == 1 { Err(DecodeError { message: "no".into(), param: None }) } else { Ok(()) });
        assert_eq!(stopped.unwrap_err().message, "no");
    }

    #[test]
    fn decodes_from_a_value_too() {
        let b: Body = serde_json::from_value(json!({"messages": [{"role": "user", "content": "x"}]})).unwrap();
        let built =
            Messages::from_items(&[M { role: "user".into(), rest: Map::from_iter([("content".into(), json!("x"))]) }])
                .unwrap();
        assert_eq!(b.messages.raw().get(), built.raw().get());
    }
}
