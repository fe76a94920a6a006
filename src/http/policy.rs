//! The HTTP policy: rules loaded from TOML files, first match wins, default
//! deny. Pure: request facts in, a verdict out.
//!
//! A rule matches when every condition it names holds: vendor (from its
//! file), method, the canonical path (a case-insensitive regex), query keys
//! and values, the ONVIF operation, and Dahua RPC methods and parameters.
//! A request carrying several operations (a `system.multicall`, a SOAP body
//! with more than one call) is judged call by call and passes only if every
//! call does, so a denied call cannot ride along with allowed ones.

use std::path::Path;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use super::normalize::Target;
use crate::config::Vendor;

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    /// Allow and count (and log).
    Log,
}

/// The outcome for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// The rule that decided (`default-deny` when none matched).
    pub rule: Arc<str>,
    pub reason: Arc<str>,
    pub cve: Arc<[String]>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.action != Action::Deny
    }

    pub fn verdict_label(&self) -> &'static str {
        match self.action {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Log => "log",
        }
    }
}

/// One Dahua JSON-RPC call.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcCall {
    pub method: String,
    pub params: serde_json::Value,
}

/// What the policy looks at.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub vendor: Vendor,
    pub method: &'a str,
    pub target: &'a Target,
    /// ONVIF operations in the request (usually one).
    pub onvif_ops: &'a [String],
    /// Dahua RPC calls, every call of a multicall included.
    pub rpc: &'a [RpcCall],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// `hikvision`, `dahua`, `generic` or `any`.
    vendor: String,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamSpec {
    /// Dotted path in the call (`params.clientType`).
    path: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    /// Regexes (case-insensitive, unanchored unless they say so).
    #[serde(default)]
    patterns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    action: Action,
    reason: String,
    #[serde(default)]
    cve: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
    path: Option<String>,
    #[serde(default)]
    query_keys: Vec<String>,
    #[serde(default)]
    query: std::collections::BTreeMap<String, String>,
    /// Regex: matches when the value of any query key matches it.
    query_any: Option<String>,
    #[serde(default)]
    onvif_ops: Vec<String>,
    rpc_methods: Option<String>,
    #[serde(default)]
    rpc_params: Vec<ParamSpec>,
}

#[derive(Debug)]
struct ParamCond {
    path: Vec<String>,
    values: Vec<String>,
    prefixes: Vec<String>,
    patterns: Vec<Regex>,
}

#[derive(Debug)]
struct Rule {
    vendor: Option<Vendor>,
    verdict: Verdict,
    methods: Vec<String>,
    path: Option<Regex>,
    query_keys: Vec<String>,
    query: Vec<(String, Regex)>,
    query_any: Option<Regex>,
    onvif_ops: Vec<String>,
    rpc_methods: Option<Regex>,
    rpc_params: Vec<ParamCond>,
}

/// The loaded rules, in order.
#[derive(Debug)]
pub struct Policy {
    rules: Vec<Rule>,
    default_deny: Verdict,
}

/// A problem loading a policy file, naming the file and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
}

impl Policy {
    /// Loads rule files in order. Every problem of every file is reported.
    pub fn load(files: &[impl AsRef<Path>]) -> Result<Policy, Vec<LoadError>> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for f in files {
            let f = f.as_ref();
            match std::fs::read_to_string(f) {
                Ok(text) => match Self::parse(&text, &f.display().to_string()) {
                    Ok(mut r) => rules.append(&mut r.rules),
                    Err(mut e) => errors.append(&mut e),
                },
                Err(e) => errors.push(LoadError(format!("{}: {e}", f.display()))),
            }
        }
        let mut ids = std::collections::HashSet::new();
        for r in &rules {
            if !ids.insert(r.verdict.rule.clone()) {
                errors.push(LoadError(format!("duplicate rule id '{}'", r.verdict.rule)));
            }
        }
        if errors.is_empty() {
            Ok(Policy {
                rules,
                default_deny: Self::default_deny(),
            })
        } else {
            Err(errors)
        }
    }

    fn default_deny() -> Verdict {
        Verdict {
            action: Action::Deny,
            rule: "default-deny".into(),
            reason: "no rule allows this request".into(),
            cve: Arc::from(Vec::new()),
        }
    }

    /// Parses one file's text; `name` appears in error messages.
    pub fn parse(text: &str, name: &str) -> Result<Policy, Vec<LoadError>> {
        let file: File =
            toml::from_str(text).map_err(|e| vec![LoadError(format!("{name}: {e}"))])?;
        let vendor = match file.vendor.as_str() {
            "any" => None,
            "hikvision" => Some(Vendor::Hikvision),
            "dahua" => Some(Vendor::Dahua),
            "generic" => Some(Vendor::Generic),
            other => {
                return Err(vec![LoadError(format!(
                    "{name}: vendor '{other}' is not one of any, hikvision, dahua, generic"
                ))]);
            }
        };
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for r in file.rules {
            let at = format!("{name}: rule '{}'", r.id);
            let mut bad = |what: &str, e: &dyn std::fmt::Display| {
                errors.push(LoadError(format!("{at}: {what}: {e}")))
            };
            if !crate::config::is_label_safe(&r.id) {
                bad(
                    "id",
                    &"must match [a-z0-9][a-z0-9_-]* (it is a metric label)",
                );
                continue;
            }
            let path = match r.path.as_deref().map(regex).transpose() {
                Ok(p) => p,
                Err(e) => {
                    bad("path", &e);
                    continue;
                }
            };
            let mut query = Vec::new();
            for (k, v) in &r.query {
                match regex(v) {
                    Ok(re) => query.push((k.to_lowercase(), re)),
                    Err(e) => bad(&format!("query.{k}"), &e),
                }
            }
            let query_any = match r.query_any.as_deref().map(regex).transpose() {
                Ok(p) => p,
                Err(e) => {
                    bad("query_any", &e);
                    continue;
                }
            };
            let rpc_methods = match r.rpc_methods.as_deref().map(regex).transpose() {
                Ok(p) => p,
                Err(e) => {
                    bad("rpc_methods", &e);
                    continue;
                }
            };
            let mut rpc_params = Vec::new();
            for p in r.rpc_params {
                let mut patterns = Vec::new();
                for x in &p.patterns {
                    match regex(x) {
                        Ok(re) => patterns.push(re),
                        Err(e) => bad(&format!("rpc_params '{}'", p.path), &e),
                    }
                }
                rpc_params.push(ParamCond {
                    path: p.path.split('.').map(str::to_string).collect(),
                    values: p.values,
                    prefixes: p.prefixes,
                    patterns,
                });
            }
            rules.push(Rule {
                vendor,
                verdict: Verdict {
                    action: r.action,
                    rule: Arc::from(r.id.as_str()),
                    reason: Arc::from(r.reason.as_str()),
                    cve: Arc::from(r.cve),
                },
                methods: r.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                path,
                query_keys: r.query_keys.iter().map(|k| k.to_lowercase()).collect(),
                query,
                query_any,
                onvif_ops: r.onvif_ops.iter().map(|o| o.to_lowercase()).collect(),
                rpc_methods,
                rpc_params,
            });
        }
        if errors.is_empty() {
            Ok(Policy {
                rules,
                default_deny: Self::default_deny(),
            })
        } else {
            Err(errors)
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The verdict for a request.
    pub fn decide(&self, f: &Facts<'_>) -> Verdict {
        // Judge each operation on its own; a request passes only if all do.
        if f.rpc.len() > 1 || f.onvif_ops.len() > 1 {
            let mut worst: Option<Verdict> = None;
            let singles = f
                .rpc
                .iter()
                .map(|c| Facts {
                    rpc: std::slice::from_ref(c),
                    onvif_ops: &[],
                    ..f.clone()
                })
                .chain(f.onvif_ops.iter().map(|o| Facts {
                    onvif_ops: std::slice::from_ref(o),
                    rpc: &[],
                    ..f.clone()
                }));
            // The request-level conditions (vendor, method, path, query)
            // are the same for every operation: evaluate them once.
            let base: Vec<bool> = self.rules.iter().map(|r| r.matches_request(f)).collect();
            for single in singles {
                let v = self
                    .rules
                    .iter()
                    .zip(&base)
                    .find(|(r, ok)| **ok && r.matches_ops(&single))
                    .map_or_else(|| self.default_deny.clone(), |(r, _)| r.verdict.clone());
                let rank = |v: &Verdict| match v.action {
                    Action::Deny => 2,
                    Action::Log => 1,
                    Action::Allow => 0,
                };
                if worst.as_ref().is_none_or(|w| rank(&v) > rank(w)) {
                    worst = Some(v);
                }
                if worst.as_ref().is_some_and(|w| w.action == Action::Deny) {
                    break;
                }
            }
            return worst.unwrap_or_else(|| self.default_deny.clone());
        }
        self.first_match(f)
    }

    fn first_match(&self, f: &Facts<'_>) -> Verdict {
        for r in &self.rules {
            if r.matches_request(f) && r.matches_ops(f) {
                return r.verdict.clone();
            }
        }
        self.default_deny.clone()
    }
}

/// A string field of a call seen as a whole, `{"method": ..., "params":
/// {...}}`: `method`, or a dotted path under `params`.
fn call_field<'a>(c: &'a RpcCall, path: &[String]) -> Option<&'a str> {
    match path.split_first() {
        Some((head, [])) if head == "method" => Some(c.method.as_str()),
        Some((head, rest)) if head == "params" => rest
            .iter()
            .try_fold(&c.params, |v, k| v.get(k))
            .and_then(|v| v.as_str()),
        _ => None,
    }
}

impl Rule {
    /// Vendor, method, path and query conditions.
    fn matches_request(&self, f: &Facts<'_>) -> bool {
        if self.vendor.is_some_and(|v| v != f.vendor) {
            return false;
        }
        if !self.methods.is_empty()
            && !self
                .methods
                .iter()
                .any(|m| m == "*" || m.eq_ignore_ascii_case(f.method))
        {
            return false;
        }
        if let Some(p) = &self.path
            && !p.is_match(&f.target.path)
        {
            return false;
        }
        if !self.query_keys.is_empty()
            && !f
                .target
                .query
                .iter()
                .any(|(k, _)| self.query_keys.iter().any(|q| q.eq_ignore_ascii_case(k)))
        {
            return false;
        }
        for (k, re) in &self.query {
            match f.target.query_value(k) {
                Some(v) if re.is_match(v) => {}
                _ => return false,
            }
        }
        if let Some(re) = &self.query_any
            && !f.target.query.iter().any(|(_, v)| re.is_match(v))
        {
            return false;
        }
        true
    }

    /// ONVIF operation and RPC call conditions.
    fn matches_ops(&self, f: &Facts<'_>) -> bool {
        if !self.onvif_ops.is_empty()
            && !f
                .onvif_ops
                .iter()
                .any(|o| self.onvif_ops.iter().any(|r| r.eq_ignore_ascii_case(o)))
        {
            return false;
        }
        if let Some(re) = &self.rpc_methods
            && !f.rpc.iter().any(|c| re.is_match(&c.method))
        {
            return false;
        }
        if !self.rpc_params.is_empty() {
            let hit = f.rpc.iter().any(|c| {
                self.rpc_params.iter().any(|p| {
                    call_field(c, &p.path).is_some_and(|s| {
                        p.values.iter().any(|x| x.eq_ignore_ascii_case(s))
                            || p.prefixes.iter().any(|x| s.starts_with(x.as_str()))
                            || p.patterns.iter().any(|re| re.is_match(s))
                    })
                })
            });
            if !hit {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
