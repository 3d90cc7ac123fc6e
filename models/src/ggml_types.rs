//! GGML tensor type ids as GGUF files store them: their names, their block layouts, and which
//! ones nfai runs, so that a file using another type is refused at load time by name.

/// The name llama.cpp gives type `id` (`Q4_K`, `IQ4_NL`, …), or `None` for an id it does not
/// define.
pub fn type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return None,
    })
}

/// `(values per block, bytes per block)` of the types nfai runs; `None` for the others.
pub fn block_layout(id: u32) -> Option<(u64, u64)> {
    Some(match id {
        0 => (1, 4),
        1 | 30 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 36),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        _ => return None,
    })
}

/// The error text for tensor `tensor` of type `id`, which nfai cannot run.
pub fn unsupported(tensor: &str, id: u32) -> String {
    match type_name(id) {
        Some(name) => format!(
            "tensor `{tensor}` has quantization type {name} (GGML type {id}), which nfai cannot \
             run (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K to Q6_K)"
        ),
        None => format!("tensor `{tensor}` has unknown GGML type {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_layouts() {
        assert_eq!(type_name(3), Some("Q4_1"));
        assert_eq!(type_name(20), Some("IQ4_NL"));
        assert_eq!(type_name(4), None);
        assert_eq!(block_layout(12), Some((256, 144)));
        assert!(block_layout(20).is_none());
        assert!(unsupported("blk.0.attn_q.weight", 23).contains("IQ4_XS"));
        assert!(unsupported("x", 99).contains("unknown GGML type 99"));
    }
}
