//! Dahua JSON-RPC (`/RPC2`, `/RPC2_Login`): every call a request makes,
//! with the calls inside `system.multicall` (and JSON-RPC batches) expanded,
//! so the policy judges each one.

use super::policy::RpcCall;

/// Most calls judged in one request; more cannot be judged (denied).
pub const MAX_CALLS: usize = 256;

/// Extracts the calls, or an error if the body cannot be judged.
pub fn calls(body: &[u8]) -> Result<Vec<RpcCall>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("RPC body is not JSON: {e}"))?;
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
}
