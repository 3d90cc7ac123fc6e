//! Memory budgets per device for the model cache: host RAM, and the VRAM of each GPU a served
//! model is placed on (the driver's free memory at start less a margin, unless configured).

use std::collections::HashMap;

use nfai_cache::DeviceId;

use crate::catalog::Catalog;

/// Room left on a GPU by default for the CUDA context, cuBLAS workspaces and activations.
pub const DEFAULT_VRAM_MARGIN: u64 = 512 << 20;

/// How the GPUs' budgets are chosen.
#[derive(Debug, Clone, Copy, Default)]
pub struct VramSettings {
    /// Bytes models may take on each GPU; `None` asks the driver.
    pub budget_bytes: Option<u64>,
    /// Kept free below what the driver reports free [default: 512 MiB].
    pub margin_bytes: Option<u64>,
}

/// The budget of every device the `serve` models are placed on: `ram` for the host, and per
/// GPU the configured budget or the driver's free memory less the margin. A GPU that cannot be
/// opened (no `cuda` feature, no driver, no such device) is an error naming the model.
pub fn device_budgets(
    catalog: &Catalog,
    serve: &[String],
    ram: u64,
    vram: VramSettings,
) -> anyhow::Result<HashMap<DeviceId, u64>> {
    let mut budgets = HashMap::from([(DeviceId::Cpu, ram)]);
    for id in serve {
        let Some(e) = catalog.resolve(id) else {
            continue;
        };
        let device: DeviceId = e.device.parse().map_err(|m: String| anyhow::anyhow!(m))?;
        if budgets.contains_key(&device) {
            continue;
        }
        let handle = nfai_models::device::by_name(&e.device)
            .map_err(|err| anyhow::anyhow!("model {:?}: {err}", e.id))?;
        let budget = match vram.budget_bytes {
            Some(b) => b,
            None => {
                let (free, total) = nfai_models::device::gpu_memory(&handle)?.ok_or_else(|| {
                    anyhow::anyhow!("model {:?}: {device} reports no memory", e.id)
                })?;
                let margin = vram.margin_bytes.unwrap_or(DEFAULT_VRAM_MARGIN);
                let budget = free.saturating_sub(margin);
                tracing::info!(
                    %device, free, total, margin, budget,
                    "VRAM budget from the driver"
                );
                budget
            }
        };
        budgets.insert(device, budget);
    }
    Ok(budgets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ModelEntry;

    fn catalog(device: &str) -> Catalog {
        let mut e: ModelEntry =
            toml::from_str("id = \"g\"\nkind = \"chat\"\nformat = \"gguf\"\npath = \"g.gguf\"")
                .unwrap();
        e.device = device.into();
        Catalog::with_overrides(vec![e]).unwrap()
    }

    #[test]
    fn the_host_always_has_its_budget() {
        let b = device_budgets(&catalog("cpu"), &["g".into()], 123, VramSettings::default());
        assert_eq!(b.unwrap(), HashMap::from([(DeviceId::Cpu, 123)]));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_gpu_model_needs_the_cuda_build() {
        let err = device_budgets(
            &catalog("cuda:0"),
            &["g".into()],
            1,
            VramSettings::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"g\"") && err.contains("`cuda` feature"),
            "{err}"
        );
        // Models not served are not opened.
        assert!(device_budgets(&catalog("cuda:0"), &[], 1, VramSettings::default()).is_ok());
    }

    /// Needs an NVIDIA GPU: `cargo test --features cuda -- --ignored gpu_`.
    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs an NVIDIA GPU"]
    fn gpu_budget_is_the_free_memory_less_the_margin() {
        let b = device_budgets(
            &catalog("cuda:0"),
            &["g".into()],
            1,
            VramSettings::default(),
        )
        .unwrap();
        let gpu = b[&DeviceId::Cuda(0)];
        let dev = nfai_models::device::by_name("cuda:0").unwrap();
        let (free, _) = nfai_models::device::gpu_memory(&dev).unwrap().unwrap();
        assert!(gpu > 0 && gpu <= free, "{gpu} of {free}");
        let set = VramSettings {
            budget_bytes: Some(8 << 30),
            margin_bytes: None,
        };
        let b = device_budgets(&catalog("cuda:0"), &["g".into()], 1, set).unwrap();
        assert_eq!(b[&DeviceId::Cuda(0)], 8 << 30);
    }
}
