//! A whole KrakenD configuration file, as the operator tool reads it: the plugin blocks, the
//! endpoints with their validators and forwarded headers, and the plugin folder. Every place is
//! named the way an operator finds it in the file (`endpoints[2] "/orders/{id}"`).

use serde_json::{Map, Value};

pub struct GatewayConfig {
    pub root: Value,
}

/// One endpoint of the configuration.
pub struct Endpoint {
    pub index: usize,
    pub path: String,
    pub validator: Option<Map<String, Value>>,
    pub input_headers: Vec<String>,
}

impl Endpoint {
    /// Where it is in the file.
    pub fn place(&self) -> String {
        format!("endpoints[{}] {:?}", self.index, self.path)
    }
}

pub const SERVER: &str = "extra_config.\"plugin/http-server\"";

impl GatewayConfig {
    /// Reads a KrakenD configuration: JSON, or TOML by its extension. YAML is refused with the
    /// reason (no maintained YAML crate is used here).
    pub fn load(path: &str) -> Result<GatewayConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let lower = path.to_ascii_lowercase();
        let root: Value = if lower.ends_with(".toml") {
            toml::from_str(&text).map_err(|e| format!("{path} is not valid TOML: {e}"))?
        } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            return Err(format!("{path}: YAML configurations are not read; give the JSON KrakenD renders (`krakend check -c {path} -dt`) or convert it"));
        } else {
            serde_json::from_str(&text).map_err(|e| format!("{path} is not valid JSON: {e}"))?
        };
        if !root.is_object() {
            return Err(format!("{path}: a KrakenD configuration is an object"));
        }
        Ok(GatewayConfig { root })
    }

    /// The `plugin/http-server` object, if any.
    pub fn server(&self) -> Option<&Map<String, Value>> {
        self.root.get("extra_config")?.get("plugin/http-server")?.as_object()
    }

    /// The names the `plugin/http-server` object lists.
    pub fn names(&self) -> Vec<String> {
        match self.server().and_then(|s| s.get("name")) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => vec![],
        }
    }

    pub fn block(&self, name: &str) -> Option<&Value> {
        self.server()?.get(name)
    }

    pub fn endpoints(&self) -> Vec<Endpoint> {
        let Some(Value::Array(list)) = self.root.get("endpoints") else { return vec![] };
        list.iter()
            .enumerate()
            .map(|(index, e)| Endpoint {
                index,
                path: e.get("endpoint").and_then(Value::as_str).unwrap_or("").to_owned(),
                validator: e.get("extra_config").and_then(|x| x.get("auth/validator")).and_then(Value::as_object).cloned(),
                input_headers: match e.get("input_headers") {
                    Some(Value::Array(h)) => h.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                    _ => vec![],
                },
            })
            .collect()
    }

    /// The plugin folder and pattern (`"plugin": {"folder": ..., "pattern": ...}`).
    pub fn plugin_folder(&self) -> Option<(String, String)> {
        let p = self.root.get("plugin")?;
        Some((p.get("folder")?.as_str()?.to_owned(), p.get("pattern").and_then(Value::as_str).unwrap_or("").to_owned()))
    }
}
