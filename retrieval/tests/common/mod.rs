//! Shared fixtures: deterministic unit vectors and chunks with attributes of every type.

#![allow(dead_code)]

use std::collections::BTreeMap;

use nfai_retrieval::{AttributeValue, Chunk, ChunkPayload, SearchQuery, chunk_point_id};

pub const MODEL: &str = "multilingual-e5-small";
pub const DIM: usize = 16;

/// A pseudo-random unit vector, the same for the same seed.
pub fn vector(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Chunk `i` of `file`: region cycles north/south/central, amount is `i`, open is `i` even.
pub fn chunk(file: &str, i: u32) -> Chunk {
    let regions = ["north", "south", "central"];
    Chunk {
        id: chunk_point_id(file, i),
        vector: vector(u64::from(i) + 1000 * file.len() as u64),
        payload: ChunkPayload {
            file_id: file.into(),
            filename: format!("{file}.txt"),
            chunk_index: i,
            text: format!("đoạn {i} của {file}"),
            attributes: BTreeMap::from([
                (
                    "region".into(),
                    AttributeValue::String(regions[i as usize % 3].into()),
                ),
                ("amount".into(), AttributeValue::Number(f64::from(i))),
                ("open".into(), AttributeValue::Bool(i.is_multiple_of(2))),
            ]),
            lang: None,
        },
    }
}

pub fn chunks(file: &str, n: u32) -> Vec<Chunk> {
    (0..n).map(|i| chunk(file, i)).collect()
}

pub fn query(seed: u64, limit: usize) -> SearchQuery {
    SearchQuery {
        model: MODEL.into(),
        vector: vector(seed),
        filter: None,
        limit,
        score_threshold: None,
        languages: None,
    }
}
