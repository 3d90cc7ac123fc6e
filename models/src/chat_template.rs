//! Chat templates: Jinja sources (from GGUF `tokenizer.chat_template`, a user override, or a
//! builtin per model family) rendered with minijinja into a prompt string.
//!
//! Templates are rendered the way Hugging Face renders them (`trim_blocks`, `lstrip_blocks`,
//! `raise_exception`, `strftime_now`, and the common Python string and dict methods).
//!
//! **BOS handling:** most templates start with `{{ bos_token }}`, while the tokenizer adds its own
//! BOS when encoding with special tokens. [`ChatTemplate::render`] therefore strips one leading
//! BOS string from the rendered prompt, so the encoded prompt holds exactly one BOS.

use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use serde::{Deserialize, Serialize};

use crate::{ModelError, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

const TEMPLATE_NAME: &str = "chat";

/// Gemma's turn format; the assistant role is `model`, and a leading system message is folded
/// into the first user turn as `{system}\n\n{user}` (Gemma has no system role).
const GEMMA_TEMPLATE: &str = r#"{{- bos_token -}}
{%- if messages and messages[0].role == 'system' -%}
{%- set system = messages[0].content | trim -%}
{%- set rest = messages[1:] -%}
{%- else -%}
{%- set system = none -%}
{%- set rest = messages -%}
{%- endif -%}
{%- set fold = system is not none and rest and rest[0].role == 'user' -%}
{%- if system is not none and not fold -%}
{{- '<start_of_turn>user\n' ~ system ~ '<end_of_turn>\n' -}}
{%- endif -%}
{%- for m in rest -%}
{{- '<start_of_turn>' ~ ('model' if m.role == 'assistant' else 'user') ~ '\n' -}}
{%- if loop.first and fold -%}{{- system ~ '\n\n' -}}{%- endif -%}
{{- m.content | trim -}}
{{- '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}"#;

/// A compiled chat template plus the BOS/EOS strings it is rendered with.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    supports_tool: bool,
    /// Whether the template reads a `tools` variable (tool definitions go through it).
    uses_tools: bool,
    /// Set for a model without a template: why rendering fails.
    missing: Option<String>,
    /// Whether a leading BOS string is removed (the tokenizer adds its own BOS).
    strip_bos: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("supports_tool", &self.supports_tool)
            .field("missing", &self.missing.is_some())
            .finish_non_exhaustive()
    }
}

fn template_err(e: Error) -> ModelError {
    ModelError::Template(format!("{e:#}"))
}

impl ChatTemplate {
    /// Compiles a Jinja chat template.
    pub fn from_source(src: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.set_unknown_method_callback(python_methods);
        env.add_template_owned(TEMPLATE_NAME, src.to_string())
            .map_err(template_err)?;
        Ok(Self {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            supports_tool: src.contains("'tool'") || src.contains("\"tool\""),
            uses_tools: src.contains("tools"),
            missing: None,
            strip_bos: true,
        })
    }

    /// Keeps a leading BOS string in rendered prompts: for tokenizers that add no BOS of their
    /// own (SmolLM2's BOS id is `<|im_start|>`, which its template writes as the start of the
    /// first turn).
    pub fn keep_leading_bos(mut self) -> Self {
        self.strip_bos = false;
        self
    }

    /// The template of a model whose file carries none (a base model, such as Gemma 3 270M's
    /// GGUF): rendering fails with a message that says so and what to do instead, so chat
    /// requests get a clear error while plain completions still run.
    pub fn missing(model: &str) -> Self {
        Self {
            env: Environment::new(),
            bos_token: String::new(),
            eos_token: String::new(),
            supports_tool: false,
            uses_tools: false,
            strip_bos: false,
            missing: Some(format!(
                "the model file {model} has no chat template (`tokenizer.chat_template`); it is \
                 probably a base model: use /v1/completions, or give the model a `chat_template` \
                 in the configuration"
            )),
        }
    }

    /// Whether the model brought (or was given) a template; `false` for [`Self::missing`].
    pub fn is_available(&self) -> bool {
        self.missing.is_none()
    }

    /// The builtin Gemma template.
    pub fn gemma() -> Result<Self> {
        Self::from_source(GEMMA_TEMPLATE, "<bos>", "<eos>")
    }

    /// The builtin template of an architecture family, for files that carry none.
    pub fn for_architecture(arch: &str) -> Result<Self> {
        match Self::builtin_source(arch) {
            Some(_) => Self::gemma(),
            None => Err(ModelError::Template(format!(
                "the model file has no chat template and there is no builtin one for `{arch}`"
            ))),
        }
    }

    /// The source of the builtin template of an architecture family, if there is one.
    pub fn builtin_source(arch: &str) -> Option<&'static str> {
        matches!(arch, "gemma" | "gemma2" | "gemma3").then_some(GEMMA_TEMPLATE)
    }

    /// Whether messages with role `tool` are accepted.
    pub fn supports_tool(&self) -> bool {
        self.supports_tool
    }

    /// Renders `messages` into a prompt; with `add_generation_prompt`, the prompt ends where the
    /// assistant's reply starts. A leading BOS string is removed (see the module docs).
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// Whether the template takes tool definitions in a `tools` variable; otherwise they go
    /// through [`crate::tool_prompt`].
    pub fn uses_tools(&self) -> bool {
        self.uses_tools
    }

    /// Like [`Self::render`], with `tools` (OpenAI's tool objects) passed to the template as
    /// `tools`.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        if let Some(why) = &self.missing {
            return Err(ModelError::Template(why.clone()));
        }
        for m in messages {
            let ok = matches!(m.role.as_str(), "system" | "user" | "assistant")
                || (m.role == "tool" && self.supports_tool);
            if !ok {
                return Err(ModelError::Template(format!(
                    "unsupported message role `{}` (expected system, user or assistant{})",
                    m.role,
                    if self.supports_tool { " or tool" } else { "" }
                )));
            }
        }
        let template = self.env.get_template(TEMPLATE_NAME).map_err(template_err)?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            tools => tools.map(Value::from_serialize),
        };
        let out = template.render(ctx).map_err(template_err)?;
        match out.strip_prefix(self.bos_token.as_str()) {
            Some(rest) if self.strip_bos && !self.bos_token.is_empty() => Ok(rest.to_string()),
            _ => Ok(out),
        }
    }
}

fn raise_exception(msg: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

/// `strftime_now(format)` in UTC, for `%Y %m %d %e %b %B %H %M %S %%`.
fn strftime_now(format: String) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month_name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&day.to_string()),
            Some('b') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

fn str_arg(args: &[Value], i: usize) -> Option<&str> {
    args.get(i).and_then(Value::as_str)
}

/// The Python `str` and `dict` methods chat templates commonly call.
fn python_methods(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> std::result::Result<Value, Error> {
    if let Some(s) = value.as_str() {
        let chars = str_arg(args, 0);
        let strip_set = |c: char| chars.map_or(c.is_whitespace(), |set| set.contains(c));
        return Ok(match method {
            "strip" => Value::from(s.trim_matches(strip_set)),
            "lstrip" => Value::from(s.trim_start_matches(strip_set)),
            "rstrip" => Value::from(s.trim_end_matches(strip_set)),
            "upper" => Value::from(s.to_uppercase()),
            "lower" => Value::from(s.to_lowercase()),
            "startswith" => Value::from(chars.is_some_and(|p| s.starts_with(p))),
            "endswith" => Value::from(chars.is_some_and(|p| s.ends_with(p))),
            "replace" => match (str_arg(args, 0), str_arg(args, 1)) {
                (Some(a), Some(b)) => Value::from(s.replace(a, b)),
                _ => return Err(Error::new(ErrorKind::InvalidOperation, "replace(old, new)")),
            },
            "find" => Value::from(
                chars
                    .and_then(|p| s.find(p))
                    .map_or(-1, |i| s[..i].chars().count() as i64),
            ),
            "split" => {
                let max = args.get(1).and_then(|v| i64::try_from(v.clone()).ok());
                let parts: Vec<String> = match (chars, max) {
                    (Some(sep), Some(n)) if n >= 0 => {
                        s.splitn(n as usize + 1, sep).map(String::from).collect()
                    }
                    (Some(sep), _) => s.split(sep).map(String::from).collect(),
                    (None, _) => s.split_whitespace().map(String::from).collect(),
                };
                Value::from(parts)
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        });
    }
    if value.kind() == ValueKind::Map {
        return match method {
            "items" => state.apply_filter("items", std::slice::from_ref(value)),
            "keys" => Ok(Value::from(value.try_iter()?.collect::<Vec<_>>())),
            "values" => {
                let vals = value
                    .try_iter()?
                    .map(|k| value.get_item(&k))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(Value::from(vals))
            }
            "get" => {
                let key = args.first().cloned().unwrap_or_default();
                let v = value.get_item(&key)?;
                Ok(if v.is_undefined() {
                    args.get(1).cloned().unwrap_or_default()
                } else {
                    v
                })
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        };
    }
    Err(Error::from(ErrorKind::UnknownMethod))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(list: &[(&str, &str)]) -> Vec<ChatMessage> {
        list.iter().map(|(r, c)| ChatMessage::new(*r, *c)).collect()
    }

    #[test]
    fn gemma_builtin_formats_turns() -> Result<()> {
        let t = ChatTemplate::gemma()?;
        let out = t.render(
            &msgs(&[("user", "Hi"), ("assistant", "Hello!"), ("user", " Bye ")]),
            true,
        )?;
        assert_eq!(
            out,
            "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n\
             <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
        );
        let out = t.render(&msgs(&[("user", "Hi")]), false)?;
        assert_eq!(out, "<start_of_turn>user\nHi<end_of_turn>\n");
        Ok(())
    }

    #[test]
    fn gemma_builtin_folds_system_into_first_user_turn() -> Result<()> {
        let t = ChatTemplate::gemma()?;
        let out = t.render(&msgs(&[("system", "Be brief."), ("user", "Hi")]), true)?;
        assert_eq!(
            out,
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
        );
        let out = t.render(&msgs(&[("system", "Alone")]), true)?;
        assert_eq!(
            out,
            "<start_of_turn>user\nAlone<end_of_turn>\n<start_of_turn>model\n"
        );
        Ok(())
    }

    #[test]
    fn rejects_unknown_roles() -> Result<()> {
        let t = ChatTemplate::gemma()?;
        for role in ["tool", "developer", "bot"] {
            let err = t.render(&msgs(&[(role, "x")]), true);
            match err {
                Err(ModelError::Template(m)) => assert!(m.contains(role), "{m}"),
                other => panic!("role {role}: {other:?}"),
            }
        }
        let with_tool = ChatTemplate::from_source(
            "{% for m in messages %}{% if m.role == 'tool' %}T:{% endif %}{{ m.content }}\n{% endfor %}",
            "",
            "",
        )?;
        assert_eq!(with_tool.render(&msgs(&[("tool", "42")]), false)?, "T:42\n");
        Ok(())
    }

    #[test]
    fn strips_one_leading_bos_and_supports_python_methods() -> Result<()> {
        let src = "{{ bos_token }}{% for m in messages %}{{ m['role'].upper() }}:{{ m.content.strip() }}\
                   {% if m.content.startswith(' x') %}!{% endif %}{{ m.get('missing', '?') }}\
                   {{ m.content.split(',')|length }}\n{% endfor %}{{ eos_token }}";
        let t = ChatTemplate::from_source(src, "<s>", "</s>")?;
        let out = t.render(&msgs(&[("user", " x, y ")]), false)?;
        assert_eq!(out, "USER:x, y!?2\n</s>");
        let err =
            ChatTemplate::from_source("{{ raise_exception('nope') }}", "", "")?.render(&[], false);
        assert!(matches!(err, Err(ModelError::Template(m)) if m.contains("nope")));
        assert!(ChatTemplate::from_source("{% if %}", "", "").is_err());
        let year =
            ChatTemplate::from_source("{{ strftime_now('%Y') }}", "", "")?.render(&[], false)?;
        assert!(year.len() == 4 && year.starts_with('2'), "{year}");
        Ok(())
    }

    #[test]
    fn unknown_family_without_template_is_an_error() {
        assert!(matches!(
            ChatTemplate::for_architecture("llama"),
            Err(ModelError::Template(_))
        ));
    }
}
