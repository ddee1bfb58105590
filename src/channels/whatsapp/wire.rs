//! Private serde shapes of Meta's WhatsApp Cloud API JSON (webhooks, send responses,
//! Graph errors), built from tolerant field types so that one odd value never fails a
//! whole webhook.
//!
//! Why tolerant types instead of plain `String`/`Vec`: with derived structs, one wrong
//! type anywhere (a numeric `id`, an object where a string was expected) aborts the
//! whole streaming parse, and a batch of 1000 updates would be lost for one bad value.
//! Every type below accepts *any* JSON value: the expected shape is kept, anything else
//! becomes "absent". Only invalid JSON syntax (and duplicate keys) can still fail.
//! Strings borrow from the input when they contain no escapes.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use crate::domain::message::PLAIN_TEXT_KEYS;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Consumes the rest of a sequence we do not want (the value must still be read).
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Consumes the rest of a map we do not want.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the `visit_*` methods of a visitor whose value is `Default` ("absent")
/// for every JSON type the visitor does not list itself.
macro_rules! absent_for {
    ($($kind:ident)*) => { $( absent_for!(@one $kind); )* };
    (@one bool) => { fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok(Default::default()) } };
    (@one unit) => { fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok(Default::default()) } };
    (@one i64) => { fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok(Default::default()) } };
    (@one u64) => { fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok(Default::default()) } };
    (@one f64) => { fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok(Default::default()) } };
    (@one str) => { fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok(Default::default()) } };
    (@one seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq)?;
            Ok(Default::default())
        }
    };
    (@one map) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map)?;
            Ok(Default::default())
        }
    };
}

/// A string field; numbers are accepted as their decimal text (ids are strings in
/// Meta's JSON, but a numeric id is still an id). Anything else is absent.
#[derive(Debug, Default)]
pub(super) struct Str<'a>(pub Option<Cow<'a, str>>);

impl<'a> Str<'a> {
    /// The value as an owned string, `None` when absent or empty (Meta never sends an
    /// empty id, so an empty one is treated as missing).
    pub fn owned(&self) -> Option<String> {
        self.as_str().map(str::to_owned)
    }

    /// The value, `None` when absent or empty.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.is_empty())
    }

    /// Moves the value out, `None` when absent or empty.
    pub fn take(&mut self) -> Option<String> {
        match self.0.take() {
            Some(s) if !s.is_empty() => Some(s.into_owned()),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'a>, E> {
                Ok(Str(Some(Cow::Owned(v))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Str<'a>, E> {
                Ok(Str(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Str<'a>, E> {
                Ok(Str(Some(Cow::Owned(v.to_string()))))
            }
            absent_for!(bool unit f64 seq map);
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An integer field: a JSON integer, or a decimal string (Meta sends `timestamp` as a
/// string and error `code` as a number). Anything else is absent.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Int(pub Option<i64>);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int(i64::try_from(v).ok()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                Ok(Int(v.trim().parse().ok()))
            }
            absent_for!(bool unit f64 seq map);
        }
        d.deserialize_any(V)
    }
}

/// An object field parsed into `T`; any non-object value is absent.
#[derive(Debug)]
pub(super) struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
            }
            absent_for!(bool unit i64 u64 f64 str seq);
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An array field; `None` when the value is not an array (so a missing `entry` can be
/// told apart from an empty one). Elements must themselves be tolerant types.
#[derive(Debug)]
pub(super) struct List<T>(pub Option<Vec<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

impl<T> List<T> {
    /// The elements, empty when the field was absent or not an array.
    pub fn items(self) -> Vec<T> {
        self.0.unwrap_or_default()
    }
}

impl<T> List<Obj<T>> {
    /// The elements that were objects, in order.
    pub fn objects(self) -> impl Iterator<Item = T> {
        self.items().into_iter().filter_map(|o| o.0)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                // Cap the pre-allocation: the hint comes from the input.
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(t) = seq.next_element()? {
                    v.push(t);
                }
                Ok(List(Some(v)))
            }
            absent_for!(bool unit i64 u64 f64 str map);
        }
        d.deserialize_any(V(PhantomData))
    }
}

// ---------------------------------------------------------------------------------
// Webhook envelope: object → entry[] → changes[] → {field, value}.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Envelope<'a> {
    #[serde(borrow)]
    pub object: Str<'a>,
    #[serde(borrow)]
    pub entry: List<Obj<Entry<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Entry<'a> {
    #[serde(borrow)]
    pub changes: List<Obj<Change<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Change<'a> {
    #[serde(borrow)]
    pub field: Str<'a>,
    #[serde(borrow)]
    pub value: Obj<ChangeValue<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ChangeValue<'a> {
    #[serde(borrow)]
    pub metadata: Obj<Metadata<'a>>,
    #[serde(borrow)]
    pub contacts: List<Obj<Contact<'a>>>,
    /// Kept as their JSON text: each is read into its parts, and becomes
    /// `InboundMessage::raw` whole unless it is a plain text message (`PlainText`).
    #[serde(borrow)]
    pub messages: List<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    pub statuses: List<Obj<Status<'a>>>,
    #[serde(borrow)]
    pub errors: List<Obj<GraphError<'a>>>,
    /// `field: "smb_message_echoes"` carries its items here (Meta reference, read via a
    /// third-party mirror).
    #[serde(borrow)]
    pub message_echoes: List<Obj<Echo<'a>>>,
    /// Same items under the field's own name: UNCONFIRMED, accepted defensively.
    #[serde(borrow)]
    pub smb_message_echoes: List<Obj<Echo<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Metadata<'a> {
    #[serde(borrow)]
    pub phone_number_id: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Contact<'a> {
    #[serde(borrow)]
    pub wa_id: Str<'a>,
    /// BSUID (2026 field, third-party confirmed).
    #[serde(borrow)]
    pub user_id: Str<'a>,
    #[serde(borrow)]
    pub profile: Obj<Profile<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Profile<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Status<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
    #[serde(borrow)]
    pub status: Str<'a>,
    pub timestamp: Int,
    #[serde(borrow)]
    pub recipient_id: Str<'a>,
    #[serde(borrow)]
    pub recipient_user_id: Str<'a>,
    #[serde(borrow)]
    pub biz_opaque_callback_data: Str<'a>,
    #[serde(borrow)]
    pub errors: List<Obj<GraphError<'a>>>,
}

/// An error object as found in `value.errors[]`, `statuses[].errors[]` and the `error`
/// of a synchronous Graph response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct GraphError<'a> {
    pub code: Int,
    #[serde(borrow)]
    pub title: Str<'a>,
    #[serde(borrow)]
    pub message: Str<'a>,
    #[serde(borrow)]
    pub error_data: Obj<ErrorData<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ErrorData<'a> {
    #[serde(borrow)]
    pub details: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Echo<'a> {
    #[serde(borrow)]
    pub to: Str<'a>,
    /// UNCONFIRMED name: the BSUID of the customer, by analogy with `from_user_id`.
    #[serde(borrow)]
    pub to_user_id: Str<'a>,
    #[serde(borrow)]
    pub id: Str<'a>,
    pub timestamp: Int,
    #[serde(borrow)]
    pub text: Obj<Text<'a>>,
}

// ---------------------------------------------------------------------------------
// One inbound message, read from its `serde_json::Value` (so strings borrow from it).

/// Whether a `messages[]` item says nothing beyond a plain text message's columns:
/// only the keys `PLAIN_TEXT_KEYS`, with a `text` object of at most its `body`. Read
/// without building the item's JSON value; `store::raw_worth_keeping` makes the same
/// call on a built one.
#[derive(Debug, Default)]
pub(super) struct PlainText(pub bool);

impl<'de> Deserialize<'de> for PlainText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// How many entries a value has, when it is an object.
        #[derive(Default)]
        struct Entries(Option<usize>);
        impl<'de> Deserialize<'de> for Entries {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Entries;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("any JSON value")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                        let mut n = 0;
                        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                            n += 1;
                        }
                        Ok(Entries(Some(n)))
                    }
                    absent_for!(bool unit i64 u64 f64 str seq);
                }
                d.deserialize_any(V)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PlainText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PlainText, A::Error> {
                let (mut known_keys, mut plain_text) = (true, false);
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    let key = key.0.unwrap_or_default();
                    if key == "text" {
                        plain_text = matches!(map.next_value::<Entries>()?.0, Some(0 | 1));
                    } else {
                        map.next_value::<IgnoredAny>()?;
                        known_keys &= PLAIN_TEXT_KEYS.contains(&key.as_ref());
                    }
                }
                Ok(PlainText(known_keys && plain_text))
            }
            absent_for!(bool unit i64 u64 f64 str seq);
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Message<'a> {
    #[serde(borrow)]
    pub from: Str<'a>,
    #[serde(borrow)]
    pub from_user_id: Str<'a>,
    #[serde(borrow)]
    pub id: Str<'a>,
    pub timestamp: Int,
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    #[serde(borrow)]
    pub context: Obj<Context<'a>>,
    #[serde(borrow)]
    pub text: Obj<Text<'a>>,
    #[serde(borrow)]
    pub interactive: Obj<Interactive<'a>>,
    #[serde(borrow)]
    pub button: Obj<Button<'a>>,
    #[serde(borrow)]
    pub image: Obj<MediaObj<'a>>,
    #[serde(borrow)]
    pub audio: Obj<MediaObj<'a>>,
    #[serde(borrow)]
    pub video: Obj<MediaObj<'a>>,
    #[serde(borrow)]
    pub document: Obj<MediaObj<'a>>,
    #[serde(borrow)]
    pub sticker: Obj<MediaObj<'a>>,
    #[serde(borrow)]
    pub location: Obj<Location<'a>>,
    #[serde(borrow)]
    pub reaction: Obj<Reaction<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Context<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Text<'a> {
    #[serde(borrow)]
    pub body: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Interactive<'a> {
    #[serde(borrow)]
    pub button_reply: Obj<Reply<'a>>,
    #[serde(borrow)]
    pub list_reply: Obj<Reply<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Reply<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
    #[serde(borrow)]
    pub title: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Button<'a> {
    #[serde(borrow)]
    pub payload: Str<'a>,
    #[serde(borrow)]
    pub text: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MediaObj<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
    #[serde(borrow)]
    pub mime_type: Str<'a>,
    #[serde(borrow)]
    pub sha256: Str<'a>,
    #[serde(borrow)]
    pub caption: Str<'a>,
    #[serde(borrow)]
    pub filename: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Location<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(borrow)]
    pub address: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Reaction<'a> {
    #[serde(borrow)]
    pub message_id: Str<'a>,
}

// ---------------------------------------------------------------------------------
// Graph API responses.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SendResponse<'a> {
    #[serde(borrow)]
    pub messages: List<Obj<SentMessage<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SentMessage<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ErrorResponse<'a> {
    #[serde(borrow)]
    pub error: Obj<GraphError<'a>>,
}
