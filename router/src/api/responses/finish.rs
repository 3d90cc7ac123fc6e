//! [`Finisher`]: what an answer needs once generated, in both answer shapes (one object or
//! SSE events): the sources its citations point at, and where it is stored.

use serde_json::Value;

use crate::responses::cite::{self, Annotation, Citation};
use crate::responses::prompt::Source;
use crate::responses::store::{StoredResponse, Turn};
use crate::state::AppState;

/// What the answer needs once generated: its citations' sources and where it is stored.
pub struct Finisher {
    pub state: AppState,
    pub owner: Option<String>,
    pub store: bool,
    /// The conversation so far (without system messages), for the stored record.
    pub turns: Vec<Turn>,
    /// The sources in the prompt, in their numbering.
    pub numbered: Vec<Source>,
}

impl Finisher {
    /// How many sources the prompt numbers.
    pub fn sources(&self) -> usize {
        self.numbered.len()
    }

    /// The annotations of a final text of `chars` characters with `citations`.
    pub fn annotations(&self, citations: &[Citation], chars: usize) -> Vec<Annotation> {
        let refs: Vec<&Source> = self.numbered.iter().collect();
        cite::annotations(citations, &refs, chars)
    }

    /// Stores `response` (with `store`) with the conversation ended by `answer`; a failure is
    /// logged, never answered: the client has its response.
    pub async fn save(&self, response: &Value, answer: &str) {
        if !self.store {
            return;
        }
        let Some(store) = self.state.responses() else {
            return;
        };
        let mut conversation = self.turns.clone();
        conversation.push(Turn {
            role: "assistant".into(),
            content: answer.to_owned(),
        });
        let record = StoredResponse {
            id: response["id"].as_str().unwrap_or_default().to_owned(),
            owner: self.owner.clone(),
            stored_at_ms: 0,
            response: response.clone(),
            conversation,
        };
        if let Err(e) = store.put(record).await {
            tracing::error!(error = %e, "cannot store a response");
        }
    }
}
