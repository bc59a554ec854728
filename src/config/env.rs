//! The environment overlay: `KLACHTD__SECTION__KEY=value` sets `key` in
//! `[section]`, over the file.
//!
//! A variable's text gets its type from the setting it lands on, as serde
//! asks for it while reading [`raw::File`](super::raw::File): a whole number
//! for an integer, `true` or `false` for a boolean, comma-separated items for
//! a list (blank items dropped), a variant name for a choice, the text
//! itself for a string. So the raw structs are the only schema, and a
//! password of digits stays a string. Errors are
//! [`toml::de::Error`]s, like the file's own, so `serde_path_to_error`
//! tracks the key of both alike.

use std::collections::BTreeMap;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{Error as _, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use super::{err, ConfigError};

type Error = toml::de::Error;

const PREFIX: &str = "KLACHTD__";

/// The configuration's tree: the file's values, with the environment's over them.
pub(super) enum Layered {
    /// A value from the file, read as the `toml` crate reads it.
    File(toml::Value),
    /// A value from an environment variable.
    Env(EnvText),
    /// A table some of whose values come from the environment (the whole
    /// file is one too).
    Table(BTreeMap<String, Layered>),
}

/// An environment variable's text and its name, for errors.
pub(super) struct EnvText {
    var: String,
    text: String,
}

impl Layered {
    /// The file's table with every `KLACHTD__SECTION__KEY` of `env` over it;
    /// other variables are ignored. Names are case-insensitive after the
    /// prefix.
    pub(super) fn new(file: toml::Table, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut root: BTreeMap<String, Layered> = file
            .into_iter()
            .map(|(k, v)| (k, Layered::File(v)))
            .collect();
        for (var, text) in env {
            let Some(rest) = var.strip_prefix(PREFIX) else {
                continue;
            };
            let parts: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
            let [section, key] = parts.as_slice() else {
                return Err(form(var));
            };
            if section.is_empty() || key.is_empty() {
                return Err(form(var));
            }
            let section_table = root
                .entry(section.clone())
                .or_insert_with(|| Layered::Table(BTreeMap::new()))
                .table()
                .ok_or_else(|| err(section, "is not a section"))?;
            let value = EnvText {
                var: var.clone(),
                text: text.clone(),
            };
            section_table.insert(key.clone(), Layered::Env(value));
        }
        Ok(Layered::Table(root))
    }

    /// This value as a table that environment values can go into, if it is one.
    fn table(&mut self) -> Option<&mut BTreeMap<String, Layered>> {
        if let Layered::File(toml::Value::Table(t)) = self {
            let t = std::mem::take(t);
            *self = Layered::Table(t.into_iter().map(|(k, v)| (k, Layered::File(v))).collect());
        }
        match self {
            Layered::Table(t) => Some(t),
            _ => None,
        }
    }
}

fn form(var: &str) -> ConfigError {
    err(
        var,
        "environment overrides take the form KLACHTD__SECTION__KEY",
    )
}

/// Hands each request to the file's value, the environment's text or the table.
macro_rules! by_layer {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Error> {
            match self {
                Layered::File(v) => v.$method($($arg,)* visitor),
                Layered::Env(e) => e.$method($($arg,)* visitor),
                // A table is a map whatever is asked ("expected a sequence").
                Layered::Table(t) => {
                    let _ = ($($arg,)*);
                    MapDeserializer::new(t.into_iter()).deserialize_any(visitor)
                }
            }
        }
    )*};
}

impl<'de> serde::Deserializer<'de> for Layered {
    type Error = Error;

    /// A section is optional in the raw file; a table present is `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Layered::File(v) => v.deserialize_option(visitor),
            Layered::Env(e) => e.deserialize_option(visitor),
            table @ Layered::Table(_) => visitor.visit_some(table),
        }
    }

    by_layer! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8(); deserialize_i16(); deserialize_i32(); deserialize_i64();
        deserialize_u8(); deserialize_u16(); deserialize_u32(); deserialize_u64();
        deserialize_f32(); deserialize_f64();
        deserialize_char(); deserialize_str(); deserialize_string();
        deserialize_bytes(); deserialize_byte_buf();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }
}

impl IntoDeserializer<'_, Error> for Layered {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl EnvText {
    fn integer(&self) -> Result<i64, Error> {
        self.text
            .parse()
            .map_err(|_| Error::custom(format!("{} must be a whole number", self.var)))
    }
}

/// Integers go to the visitor as `i64`, so a value out of the setting's
/// range gets serde's own message ("invalid value: integer `-1`, expected u16").
macro_rules! integer {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_i64(self.integer()?)
        }
    )*};
}

impl<'de> serde::Deserializer<'de> for EnvText {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.text)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.text.as_str() {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            _ => Err(Error::custom(format!("{} must be true or false", self.var))),
        }
    }

    integer! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let items: Vec<String> = self
            .text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        visitor.visit_seq(SeqDeserializer::new(items.into_iter()))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(self.text))
    }

    forward_to_deserialize_any! {
        i128 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        tuple tuple_struct map struct identifier ignored_any
    }
}
