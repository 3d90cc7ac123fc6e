//! The admin API's wire types: models and devices as it shows them, and the bodies of its
//! calls.

use serde::{Deserialize, Serialize};

/// One model as the admin API shows it. Times are Unix seconds.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AdminModel {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub device: String,
    pub estimated_bytes: Option<u64>,
    pub actual_bytes: Option<u64>,
    pub pinned: bool,
    /// `-1` forever, else a duration such as `5m`.
    pub keep_alive: String,
    pub expires_at: Option<f64>,
    pub last_used_at: Option<f64>,
    pub loaded_at: Option<f64>,
    pub load_duration_ms: Option<u64>,
    pub in_flight: usize,
    pub requests_served: u64,
    pub waiters: usize,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminModelList {
    pub object: &'static str,
    pub data: Vec<AdminModel>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadBody {
    pub keep_alive: Option<serde_json::Value>,
    #[serde(default)]
    pub pin: bool,
    pub device: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnloadBody {
    #[serde(default)]
    pub force: bool,
    pub timeout_secs: Option<f64>,
}

/// One device as the admin API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AdminDevice {
    pub device: String,
    pub budget_bytes: Option<u64>,
    pub used_bytes: u64,
    pub free_bytes: Option<u64>,
    pub resident: Vec<String>,
}
