//! Dahua JSON-RPC (`/RPC2`, `/RPC2_Login`): every call a request makes,
//! with the calls inside `system.multicall` (and JSON-RPC batches) expanded,
//! so the policy judges each one.
//!
//! A body with a key twice in one object, at any depth, is refused: JSON
//! parsers disagree on which one wins (serde keeps the last, many embedded
//! parsers the first), so the call camgate judged might not be the call the
//! camera runs.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::policy::RpcCall;

/// Most calls judged in one request; more cannot be judged (denied).
pub const MAX_CALLS: usize = 256;

/// Extracts the calls, or an error if the body cannot be judged.
pub fn calls(body: &[u8]) -> Result<Vec<RpcCall>, String> {
    let Strict(v) = serde_json::from_slice(body).map_err(|e| format!("RPC body: {e}"))?;
    let mut out = Vec::new();
    collect(v, &mut out, 0)?;
    if out.is_empty() {
        return Err("RPC body names no method".into());
    }
    Ok(out)
}

fn collect(v: serde_json::Value, out: &mut Vec<RpcCall>, depth: usize) -> Result<(), String> {
    if depth > 4 {
        return Err("RPC calls nested too deeply".into());
    }
    match v {
        serde_json::Value::Array(items) => {
            for i in items {
                collect(i, out, depth + 1)?;
            }
        }
        serde_json::Value::Object(mut m) => {
            let method = match m.remove("method") {
                Some(serde_json::Value::String(s)) => s,
                _ => return Err("RPC call without a method".into()),
            };
            let params = m.remove("params").unwrap_or(serde_json::Value::Null);
            if method.eq_ignore_ascii_case("system.multicall") {
                // The batch's params are the calls themselves.
                collect(params, out, depth + 1)?;
            } else {
                out.push(RpcCall { method, params });
            }
        }
        _ => return Err("RPC call is not an object".into()),
    }
    if out.len() > MAX_CALLS {
        return Err(format!("more than {MAX_CALLS} RPC calls"));
    }
    Ok(())
}

/// A JSON value whose objects have no duplicate key (checked on the
/// decoded keys, so `"method"` and `"\u006dethod"` are one key).
pub struct Strict(pub Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(Strict(x)) = seq.next_element()? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if m.contains_key(&k) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key \"{}\"",
                    k.escape_debug()
                )));
            }
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_multicall_and_batch() {
        let c = calls(br#"{"method":"magicBox.getSerialNo","params":null,"id":1,"session":"x"}"#)
            .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].method, "magicBox.getSerialNo");
        let c = calls(
            br#"{"method":"system.multicall","params":[{"method":"magicBox.getSerialNo","params":null},{"method":"userManager.addUser","params":{"user":{"Name":"x"}}}],"id":2}"#,
        )
        .unwrap();
        let m: Vec<_> = c.iter().map(|x| x.method.as_str()).collect();
        assert_eq!(m, ["magicBox.getSerialNo", "userManager.addUser"]);
        // A multicall nested in a multicall is expanded too.
        let c = calls(br#"{"method":"system.multicall","params":[{"method":"system.multicall","params":[{"method":"a.b"}]}]}"#).unwrap();
        assert_eq!(c[0].method, "a.b");
        let c = calls(br#"[{"method":"a.b"},{"method":"c.d"}]"#).unwrap();
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn unjudgeable_bodies() {
        assert!(calls(b"not json").is_err());
        assert!(calls(b"{}").is_err());
        assert!(calls(b"[]").is_err());
        assert!(calls(br#"{"method":5}"#).is_err());
        assert!(calls(br#"{"method":"system.multicall","params":[1]}"#).is_err());
        let deep = format!(
            "{}{}",
            r#"{"method":"system.multicall","params":["#.repeat(10),
            "]}".repeat(10)
        );
        assert!(calls(deep.as_bytes()).is_err());
        let many = format!("[{}]", vec![r#"{"method":"a.b"}"#; MAX_CALLS + 1].join(","));
        assert!(calls(many.as_bytes()).is_err());
    }

    #[test]
    fn duplicate_keys_at_any_depth_are_refused() {
        for body in [
            r#"{"method":"userManager.addUser","method":"magicBox.getSerialNo"}"#,
            r#"{"method":"magicBox.getSerialNo","\u006dethod":"userManager.addUser"}"#,
            r#"{"method":"configManager.getConfig","params":{"name":"Encode","name":"Email"}}"#,
            r#"{"method":"system.multicall","params":[{"method":"a.b","params":{"x":{"y":1,"y":2}}}]}"#,
            r#"[{"method":"a.b"},{"method":"c.d","params":null,"params":{}}]"#,
        ] {
            let e = calls(body.as_bytes()).unwrap_err();
            assert!(e.contains("duplicate key"), "{body}: {e}");
        }
        // The same key in sibling objects is fine.
        assert_eq!(
            calls(br#"[{"method":"a.b","id":1},{"method":"c.d","id":2}]"#)
                .unwrap()
                .len(),
            2
        );
    }
}
