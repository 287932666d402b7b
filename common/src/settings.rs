//! Blocks of per-network settings, each field declared once.
//!
//! A block (the request policy today; the cache, ACL and rate-limit blocks
//! of later issues) is one [`settings!`] invocation. Each field is written
//! there once, with its doc comment, type, default and check, and from that
//! one declaration follow:
//!
//! - the Rust struct (the validated model both planes use) and its
//!   `Default`;
//! - its TOML shape (a table whose keys are the field names; unknown keys,
//!   duplicates and failed checks are errors that name the line and field);
//! - its wire conversion to and from the protobuf message of the same
//!   field names (`encode`, `decode`): on the wire a zero value means the
//!   default, so a field added to the protocol keeps working with a control
//!   plane that does not send it yet, and decode applies the same checks
//!   as the TOML;
//! - its reference table for operators ([`FieldDoc`]), which the README's
//!   table is tested against.
//!
//! The protobuf message is the one thing written apart (it is the contract
//! in its own language): a field missing there, or of another type, does
//! not compile. Why a macro: `#[serde(flatten)]` cannot be combined with
//! `deny_unknown_fields` (and loses the line of an error), and serde's
//! attributes take no generated paths, so the alternatives are to repeat
//! every field in four to seven places, which is what this replaced.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess};

/// One row of a block's reference table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDoc {
    /// The field's TOML key (its Rust name).
    pub name: &'static str,
    /// The default, as TOML.
    pub default: String,
    /// The field's doc comment, lines joined by spaces.
    pub doc: String,
}

/// A check run on a field's value, from a TOML file and from the wire.
pub trait Check<T> {
    /// `Err` with a message for operators when `value` is not allowed.
    fn check(value: &T) -> Result<(), String>;
}

/// Any value of the type is valid.
pub struct Any;

impl<T> Check<T> for Any {
    fn check(_: &T) -> Result<(), String> {
        Ok(())
    }
}

/// At least 1.
pub struct Positive;

macro_rules! positive {
    ($($t:ty),*) => {$(
        impl Check<$t> for Positive {
            fn check(value: &$t) -> Result<(), String> {
                if *value == 0 {
                    Err("must be at least 1".into())
                } else {
                    Ok(())
                }
            }
        }
    )*};
}
positive!(u32, u64);

/// A list of method patterns: `*` globs, none empty, none with whitespace
/// or control characters.
pub struct MethodPatterns;

impl Check<Vec<String>> for MethodPatterns {
    fn check(patterns: &Vec<String>) -> Result<(), String> {
        match patterns.iter().find(|p| {
            p.is_empty()
                || p.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        }) {
            Some(p) => Err(format!("method pattern {p:?} is empty or has whitespace")),
            None => Ok(()),
        }
    }
}

/// How a field's type travels in its protobuf message.
///
/// Zero on the wire means the field's default, so a field whose default is
/// not its type's zero must have a check that refuses zero (such as
/// [`Positive`]), or TOML could accept a value the wire cannot carry; a
/// bool that defaults to `true` needs `optional bool` in the proto.
pub trait Wire<W>: Sized {
    /// The value as its protobuf field holds it.
    fn to_wire(&self) -> W;
    /// `default` when the wire holds its zero value.
    fn from_wire(wire: W, default: Self) -> Self;
}

macro_rules! wire_as_is {
    ($($t:ty),*) => {$(
        impl Wire<$t> for $t {
            fn to_wire(&self) -> $t {
                self.clone()
            }
            fn from_wire(wire: $t, default: Self) -> Self {
                if wire == <$t>::default() { default } else { wire }
            }
        }
    )*};
}
wire_as_is!(u32, u64, bool, Vec<String>, String);

/// A bool whose default may be `true`: `optional bool` on the wire, where
/// absence (a control plane that does not send the field) is the default.
impl Wire<Option<bool>> for bool {
    fn to_wire(&self) -> Option<bool> {
        Some(*self)
    }
    fn from_wire(wire: Option<bool>, default: Self) -> Self {
        wire.unwrap_or(default)
    }
}

/// Deserializes a `T` and checks it with `C`, inside the value's own
/// deserialization, so a failed check points at the value's line.
pub struct Checked<T, C>(PhantomData<(T, C)>);

impl<T, C> Checked<T, C> {
    /// The seed (it holds no data).
    pub fn new() -> Self {
        Checked(PhantomData)
    }
}

impl<T, C> Default for Checked<T, C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'de, T: Deserialize<'de>, C: Check<T>> DeserializeSeed<'de> for Checked<T, C> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        let value = T::deserialize(d)?;
        C::check(&value).map_err(de::Error::custom)?;
        Ok(value)
    }
}

/// The `expecting` text of a block's visitor.
pub struct Expecting(pub &'static str);

impl fmt::Display for Expecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a table of {}", self.0)
    }
}

/// Declares a block of settings; see the module docs.
///
/// ```ignore
/// settings! {
///     /// What the block is.
///     pub struct Block: proto::Block {
///         /// What the field does.
///         field: u32 = 7, Positive;
///     }
/// }
/// ```
#[macro_export]
macro_rules! settings {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident : $wire:path {
            $(
                $(#[doc = $fdoc:literal])*
                $field:ident : $ty:ty = $default:expr, $check:ident;
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
        pub struct $name {
            $(
                $(#[doc = $fdoc])*
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        impl $name {
            /// The TOML keys of this block.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// This block as its protobuf message.
            pub fn encode(&self) -> $wire {
                use $crate::settings::Wire as _;
                $wire { $($field: self.$field.to_wire(),)* }
            }

            /// This block from its protobuf message: zero values mean the
            /// default; the checks of the TOML apply.
            pub fn decode(wire: $wire) -> Result<Self, String> {
                use $crate::settings::Wire as _;
                let d = Self::default();
                let block = Self {
                    $($field: <$ty>::from_wire(wire.$field, d.$field),)*
                };
                $(
                    <$crate::settings::$check as $crate::settings::Check<$ty>>::check(&block.$field)
                        .map_err(|e| format!("{}: {e}", stringify!($field)))?;
                )*
                Ok(block)
            }

            /// Reads the value of `key` from `map` if `key` is one of this
            /// block's fields (with its check); `false` otherwise.
            pub fn deserialize_field<'de, A: serde::de::MapAccess<'de>>(
                &mut self,
                key: &str,
                map: &mut A,
            ) -> Result<bool, A::Error> {
                match key {
                    $(stringify!($field) => {
                        self.$field = map.next_value_seed(
                            $crate::settings::Checked::<$ty, $crate::settings::$check>::new(),
                        )?;
                    })*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// The reference table of this block, in declaration order.
            pub fn reference() -> Vec<$crate::settings::FieldDoc> {
                let d = Self::default();
                vec![$(
                    $crate::settings::FieldDoc {
                        name: stringify!($field),
                        default: $crate::settings::toml_text(&d.$field),
                        doc: $crate::settings::doc_text(&[$($fdoc),*]),
                    },
                )*]
            }
        }

        impl $crate::settings::Block for $name {
            fn has_field(key: &str) -> bool {
                $name::FIELDS.contains(&key)
            }
            fn deserialize_field<'de, A: serde::de::MapAccess<'de>>(
                &mut self,
                key: &str,
                map: &mut A,
            ) -> Result<bool, A::Error> {
                $name::deserialize_field(self, key, map)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[allow(non_camel_case_types)]
                #[derive(Clone, Copy)]
                enum Key { $($field,)* }
                impl<'de> serde::Deserialize<'de> for Key {
                    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                        let key = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                        match key.as_ref() {
                            $(stringify!($field) => Ok(Key::$field),)*
                            other => Err(serde::de::Error::unknown_field(other, $name::FIELDS)),
                        }
                    }
                }
                struct Visitor;
                impl<'de> serde::de::Visitor<'de> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "{}", $crate::settings::Expecting(stringify!($name)))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        let mut block = $name::default();
                        let mut seen = [false; $name::FIELDS.len()];
                        while let Some(key) = map.next_key::<Key>()? {
                            let i = key as usize;
                            if std::mem::replace(&mut seen[i], true) {
                                return Err(serde::de::Error::custom(
                                    format_args!("duplicate field `{}`", $name::FIELDS[i]),
                                ));
                            }
                            match key {
                                $(Key::$field => {
                                    block.$field = map.next_value_seed(
                                        $crate::settings::Checked::<$ty, $crate::settings::$check>::new(),
                                    )?;
                                })*
                            }
                        }
                        Ok(block)
                    }
                }
                d.deserialize_struct(stringify!($name), $name::FIELDS, Visitor)
            }
        }
    };
}

/// A block whose fields can be read one key at a time.
pub trait Block: Default {
    /// Whether `key` is one of the block's fields.
    fn has_field(key: &str) -> bool;
    /// See the `deserialize_field` the macro generates.
    fn deserialize_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error>;
}

/// A struct deserialized by a derived `#[serde(remote = "Self")]`
/// deserializer, which [`with_flat_block`] wraps.
pub trait Outer<'de>: Sized {
    /// The derived `#[serde(remote = "Self")]` deserializer.
    fn deserialize_outer<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// Deserializes a table whose keys are those of `T` and, at the same level,
/// those of block `B`, without buffering: each key of `B` is read into the
/// block with its check, every other key goes to `T` (whose derived
/// deserializer keeps refusing unknown keys). Values are read from `d`
/// itself, so errors keep their line and field path, which
/// `#[serde(flatten)]` loses.
pub fn with_flat_block<'de, D, T, B>(d: D) -> Result<(T, B), D::Error>
where
    D: Deserializer<'de>,
    T: Outer<'de>,
    B: Block,
{
    struct Visitor<T, B>(PhantomData<(T, B)>);
    impl<'de, T: Outer<'de>, B: Block> de::Visitor<'de> for Visitor<T, B> {
        type Value = (T, B);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(T, B), A::Error> {
            let mut block = B::default();
            let outer = T::deserialize_outer(MapAccessDeserializer::new(Intercept {
                map,
                block: &mut block,
            }))?;
            Ok((outer, block))
        }
    }
    d.deserialize_map(Visitor(PhantomData))
}

/// The map `T` sees in [`with_flat_block`]: the block's keys taken out.
struct Intercept<'b, A, B> {
    map: A,
    block: &'b mut B,
}

impl<'de, A: MapAccess<'de>, B: Block> MapAccess<'de> for Intercept<'_, A, B> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        mut seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            match self.map.next_key_seed(RouteKey {
                seed,
                is_block: B::has_field,
            })? {
                None => return Ok(None),
                Some(Routed::Outer(key)) => return Ok(Some(key)),
                Some(Routed::Block(key, back)) => {
                    self.block.deserialize_field(&key, &mut self.map)?;
                    seed = back;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// A key of the shared table: the block's, or `T`'s (read by `T`'s seed
/// while the original key deserializer is still on the stack, so an
/// unknown key is reported at its own line).
enum Routed<V, K> {
    Outer(V),
    Block(String, K),
}

struct RouteKey<K> {
    seed: K,
    is_block: fn(&str) -> bool,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for RouteKey<K> {
    type Value = Routed<K::Value, K>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> de::Visitor<'de> for RouteKey<K> {
    type Value = Routed<K::Value, K>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if (self.is_block)(key) {
            Ok(Routed::Block(key.to_owned(), self.seed))
        } else {
            self.seed
                .deserialize(de::value::StrDeserializer::<E>::new(key))
                .map(Routed::Outer)
        }
    }
}

/// A block's reference as a Markdown table (field, default, meaning), the
/// form the README carries.
pub fn markdown_table(rows: &[FieldDoc]) -> String {
    let mut out = String::from("| field | default | meaning |\n| --- | --- | --- |\n");
    for row in rows {
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            row.name,
            row.default,
            row.doc.replace('|', "\\|")
        ));
    }
    out
}

/// A default value as TOML text (`1048576`, `true`, `[]`, `"x"`).
pub fn toml_text<T: serde::Serialize>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(v) => v.to_string(),
        Err(e) => format!("<{e}>"),
    }
}

/// Doc comment lines as one paragraph.
pub fn doc_text(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
