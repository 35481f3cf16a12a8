//! Decoding request bodies the way Consul's Go `encoding/json` does.
//!
//! Consul binds JSON object keys to struct fields case-insensitively (python-consul sends
//! `name`, node-consul sends `H2Ping`) and also accepts snake_case spellings
//! (`enable_tag_override`). `null` stands for "absent" on any field, and unknown fields are
//! accepted and ignored so old clients keep working (compat §1.7).
//!
//! The trick: a [`Deserializer`] over a [`serde_json::Value`] that, whenever serde asks for a
//! *struct*, renames the object's keys to the struct's own field names by a normalised match
//! (lower case, `_` and `-` removed). Maps (`Meta`, `Header`, ...) keep their keys verbatim
//! because serde asks for a map there, not a struct. Keys that match no field are normalised
//! too, so a `#[serde(alias = "args")]` written in normalised form catches `Args`, `args` and
//! `script_args`-style spellings.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Decodes `bytes` as JSON into `T` with Consul's lenient, case-insensitive binding.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let value: Value = serde_json::from_slice(bytes)?;
    from_value(value)
}

/// Like [`from_slice`] for an already parsed value (config files use this).
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    T::deserialize(Ci(value))
}

/// The normal form used to match keys to field names.
pub fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn rename_keys(map: Map<String, Value>, fields: &'static [&'static str]) -> Map<String, Value> {
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        let name = if fields.contains(&key.as_str()) {
            key
        } else {
            let norm = normalize_key(&key);
            match fields.iter().find(|f| normalize_key(f) == norm) {
                Some(f) => (*f).to_string(),
                None => norm,
            }
        };
        // A later spelling of the same field wins, as in Go's decoder.
        out.insert(name, value);
    }
    out
}

struct Ci(Value);

impl<'de> de::Deserializer<'de> for Ci {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => n.deserialize_any(visitor).map_err(de::Error::custom),
            Value::String(s) => visitor.visit_string(s),
            Value::Array(a) => visitor.visit_seq(Seq(a.into_iter())),
            Value::Object(m) => visitor.visit_map(Obj::new(m)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Ci(other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(m) => visitor.visit_map(Obj::new(rename_keys(m, fields))),
            Value::Null => visitor.visit_map(Obj::new(Map::new())),
            other => Ci(other).deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_map(Obj::new(Map::new())),
            other => Ci(other).deserialize_any(visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_seq(Seq(Vec::new().into_iter())),
            other => Ci(other).deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

struct Seq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Seq {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        match self.0.next() {
            Some(v) => seed.deserialize(Ci(v)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Obj {
    iter: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl Obj {
    fn new(map: Map<String, Value>) -> Self {
        Obj {
            iter: map.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Obj {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value is missing"))?;
        seed.deserialize(Ci(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    struct Inner {
        #[serde(rename = "ID")]
        id: String,
        #[serde(alias = "args")]
        script_args: Vec<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    struct Outer {
        name: String,
        enable_tag_override: bool,
        meta: BTreeMap<String, String>,
        check: Option<Inner>,
        checks: Vec<Inner>,
        port: u16,
    }

    #[test]
    fn binds_keys_case_insensitively_and_snake_case() {
        let o: Outer = from_slice(
            br#"{"name":"web","enable_tag_override":true,"META":{"Env-Key":"x"},
                 "check":{"id":"c1","Args":["a"]},"Checks":null,"port":80,"Unknown":1}"#,
        )
        .unwrap();
        assert_eq!(o.name, "web");
        assert!(o.enable_tag_override);
        assert_eq!(
            o.meta.get("Env-Key").map(String::as_str),
            Some("x"),
            "map keys stay verbatim"
        );
        let c = o.check.unwrap();
        assert_eq!(c.id, "c1");
        assert_eq!(c.script_args, vec!["a"]);
        assert!(o.checks.is_empty());
        assert_eq!(o.port, 80);
    }

    #[test]
    fn wrong_types_are_errors() {
        let e = from_slice::<Outer>(br#"{"Port":"eighty"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
    }
}
