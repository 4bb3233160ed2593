//! What the mock answers, whatever protocol it speaks. The model name picks the behaviour (the
//! table in the crate doc) and the request supplies the rest; a protocol module only encodes the
//! resulting [`Script`], as one body or as stream frames, one [`Unit`] at a time.

use std::time::Duration;

use crate::summary::Summary;

/// The arguments of the first scripted tool call, byte for byte: tests compare the bytes.
pub const TOOL_ARGUMENTS: &str = r#"{"location": "Paris, France", "unit": "celsius"}"#;
/// What an `agent` model has its client's shell run, and so what its final answer quotes.
pub const AGENT_MARKER: &str = "mock-agent-ok";
/// An `agent` model's call per shell tool of the agents it is tested with: its name, then its
/// arguments (Claude Code's `Bash`, Codex CLI's `shell`, `shell_command` and `exec_command`).
const AGENT_TOOLS: [(&str, &str); 4] = [
    ("Bash", r#"{"command":"echo mock-agent-ok","description":"Print the mock's marker"}"#),
    ("shell", r#"{"command":["bash","-lc","echo mock-agent-ok"]}"#),
    ("shell_command", r#"{"command":"echo mock-agent-ok"}"#),
    ("exec_command", r#"{"cmd":"echo mock-agent-ok"}"#),
];
/// The arguments of the second call of `tools-2`.
pub const SECOND_TOOL_ARGUMENTS: &str = r#"{"location": "Tokyo, Japan", "unit": "celsius"}"#;

/// The reasoning a `reason` model streams before its answer.
const REASONING: [&str; 2] = ["Let me think", " about this."];
/// Prompt tokens a `cache` model reports as read from the cache…
const CACHE_READ: u64 = 1000;
/// …and as written to it (only Anthropic reports these apart; elsewhere they are plain prompt tokens).
const CACHE_WRITE: u64 = 200;
/// The size of the pieces a streamed tool call's arguments come in.
const FRAGMENT_BYTES: usize = 12;

/// The number after `key-` in the model name, if any.
pub(crate) fn param(model: &str, key: &str) -> Option<u64> {
    let start = model.find(&format!("{key}-"))? + key.len() + 1;
    let digits: String = model[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Why the answer ended, in protocol-independent terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    End,
    Length,
    ToolUse,
    Refusal,
}

/// Token counts of one answer; every protocol reports them in its own fields.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    /// All prompt tokens, cached ones included (as OpenAI and Gemini count them).
    pub prompt: u64,
    /// Output tokens, reasoning included: one per streamed unit, so a stream and a body agree.
    pub completion: u64,
    /// The reasoning part of `completion`.
    pub reasoning: u64,
    /// The part of `prompt` read from the cache.
    pub cache_read: u64,
    /// The part of `prompt` written to the cache.
    pub cache_write: u64,
}

/// One scripted tool call.
#[derive(Debug)]
pub(crate) struct ToolCall {
    pub name: String,
    /// JSON text; a stream delivers it in [`FRAGMENT_BYTES`]-sized pieces.
    pub arguments: &'static str,
}

impl ToolCall {
    pub fn fragments(&self) -> Vec<&'static str> {
        let s = self.arguments;
        let mut out = Vec::new();
        let mut start = 0;
        for (i, _) in s.char_indices() {
            if i - start >= FRAGMENT_BYTES {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out.push(&s[start..]);
        out
    }
}

/// The streamed text: rendered when sent, so `chunks-4000-pad-16000` starts at once and holds
/// no 64 MB in memory.
enum Text {
    /// `Hello`, ` w1`, ` w2`…, each padded.
    Counted {
        n: u64,
        pad: String,
    },
    Fixed(Vec<String>),
}

impl Text {
    fn len(&self) -> u64 {
        match self {
            Text::Counted { n, .. } => *n,
            Text::Fixed(chunks) => chunks.len() as u64,
        }
    }

    fn chunk(&self, i: u64) -> Option<String> {
        match self {
            Text::Counted { n, .. } if i >= *n => None,
            Text::Counted { pad, .. } if i == 0 => Some(format!("Hello{pad}")),
            Text::Counted { pad, .. } => Some(format!(" w{i}{pad}")),
            Text::Fixed(chunks) => chunks.get(i as usize).cloned(),
        }
    }
}

/// One step of a streamed answer, in order: reasoning, then text, then tool calls.
pub(crate) enum Unit<'a> {
    Reasoning(&'static str),
    Text(String),
    /// A tool call begins (id and name).
    ToolStart {
        index: usize,
        call: &'a ToolCall,
    },
    /// A piece of its arguments; `last` completes them.
    ToolArgs {
        index: usize,
        call: &'a ToolCall,
        fragment: &'static str,
        last: bool,
    },
}

/// The whole answer to one request.
pub(crate) struct Script {
    pub model: String,
    pub reasoning: Vec<&'static str>,
    text: Text,
    /// The text of a non-streamed answer (the stream spells its own: `Hello w1 w2`, as the mock
    /// always did, unless the behaviour fixes the text).
    pub reply: String,
    pub tool_calls: Vec<ToolCall>,
    /// (call, fragment) per tool unit; `None` is the call's start.
    tool_units: Vec<(usize, Option<usize>)>,
    pub stop: Stop,
    /// `None` for `no-usage`.
    pub usage: Option<Usage>,
    /// Send the protocol's in-band error at this step of the stream, and stop.
    pub error_after: Option<u64>,
    /// Break the connection at this step of the stream.
    pub cut_after: Option<u64>,
    /// Wait between stream frames.
    pub slow: Duration,
    /// Wait before the first stream frame.
    pub think: Duration,
}

impl Script {
    /// `reply` is the default non-streamed text; `prompt_words` the request's deterministic token
    /// count; `summary` is asked for only by the behaviours that need the request's content.
    /// `Err` is a client error to answer with 400.
    pub fn new(
        model: &str,
        reply: String,
        prompt_words: u64,
        summary: impl FnOnce() -> Summary,
    ) -> Result<Self, String> {
        let echo = model.contains("echo");
        let agent = model.contains("agent");
        let tools_wanted = if model.contains("tools-2") {
            2
        } else if model.contains("tool") {
            1
        } else {
            0
        };
        let summary = (echo || agent || tools_wanted > 0).then(summary);

        let mut tool_calls = Vec::new();
        // An agent's turn: run its shell, or, once the result is back, answer with it.
        let answered = summary.as_ref().filter(|_| agent).and_then(|s| s.answered_tool().map(String::from));
        if agent && answered.is_none() {
            let tools = summary.as_ref().map(|s| s.tools.as_slice()).unwrap_or_default();
            let Some((name, arguments)) = AGENT_TOOLS.iter().find(|(name, _)| tools.iter().any(|t| t == name)) else {
                return Err(format!(
                    "the mock model `{model}` runs a shell tool ({}), and the request has none of them",
                    AGENT_TOOLS.map(|(name, _)| name).join(", ")
                ));
            };
            tool_calls.push(ToolCall { name: name.to_string(), arguments });
        }
        if tools_wanted > 0 {
            let Some(name) = summary.as_ref().and_then(|s| s.tools.first().cloned()) else {
                return Err(format!(
                    "the mock model `{model}` calls the first tool of the request, and the request has no tools"
                ));
            };
            tool_calls.push(ToolCall { name: name.clone(), arguments: TOOL_ARGUMENTS });
            if tools_wanted == 2 {
                tool_calls.push(ToolCall { name, arguments: SECOND_TOOL_ARGUMENTS });
            }
        }
        let mut tool_units = Vec::new();
        for (k, call) in tool_calls.iter().enumerate() {
            tool_units.push((k, None));
            tool_units.extend((0..call.fragments().len()).map(|f| (k, Some(f))));
        }

        let (text, reply) = if let Some(result) = answered {
            let reply = format!("The tool said: {}", result.trim());
            (Text::Fixed(thirds(&reply)), reply)
        } else if let (true, Some(summary)) = (echo, summary.as_ref()) {
            let json = summary.to_json();
            (Text::Fixed(thirds(&json)), json)
        } else if !tool_calls.is_empty() {
            (Text::Fixed(Vec::new()), String::new())
        } else {
            let pad = "x".repeat(param(model, "pad").unwrap_or(0) as usize);
            (Text::Counted { n: param(model, "chunks").unwrap_or(3), pad }, reply)
        };
        let reasoning = if model.contains("reason") { REASONING.to_vec() } else { Vec::new() };

        let stop = if !tool_calls.is_empty() {
            Stop::ToolUse
        } else if model.contains("max-tokens") {
            Stop::Length
        } else if model.contains("refuse") {
            Stop::Refusal
        } else {
            Stop::End
        };
        let (cache_read, cache_write) = if model.contains("cache") { (CACHE_READ, CACHE_WRITE) } else { (0, 0) };
        let units = reasoning.len() as u64 + text.len() + tool_units.len() as u64;
        let usage = (!model.contains("no-usage")).then_some(Usage {
            prompt: prompt_words + cache_read + cache_write,
            completion: units,
            reasoning: reasoning.len() as u64,
            cache_read,
            cache_write,
        });
        Ok(Script {
            model: model.to_string(),
            reasoning,
            text,
            reply,
            tool_calls,
            tool_units,
            stop,
            usage,
            error_after: param(model, "error-after"),
            cut_after: param(model, "cut-after"),
            slow: Duration::from_millis(param(model, "slow").unwrap_or(0)),
            think: Duration::from_millis(param(model, "think").unwrap_or(0)),
        })
    }

    /// How many units a stream of this answer has.
    pub fn units(&self) -> u64 {
        self.reasoning.len() as u64 + self.text.len() + self.tool_units.len() as u64
    }

    pub fn unit(&self, i: u64) -> Option<Unit<'_>> {
        let r = self.reasoning.len() as u64;
        if i < r {
            return Some(Unit::Reasoning(self.reasoning[i as usize]));
        }
        let t = self.text.len();
        if i < r + t {
            return self.text.chunk(i - r).map(Unit::Text);
        }
        let (index, fragment) = *self.tool_units.get((i - r - t) as usize)?;
        let call = &self.tool_calls[index];
        Some(match fragment {
            None => Unit::ToolStart { index, call },
            Some(f) => {
                let fragments = call.fragments();
                Unit::ToolArgs { index, call, fragment: fragments[f], last: f + 1 == fragments.len() }
            }
        })
    }

    /// All the reasoning, as a non-streamed answer carries it.
    pub fn reasoning_text(&self) -> String {
        self.reasoning.concat()
    }
}

/// `s` in three pieces (fewer when it is shorter), split on character boundaries.
fn thirds(s: &str) -> Vec<String> {
    let target = s.len().div_ceil(3).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in s.char_indices() {
        if i - start >= target {
            out.push(s[start..i].to_string());
            start = i;
        }
    }
    if start < s.len() || out.is_empty() {
        out.push(s[start..].to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Summary {
        let mut s = Summary::default();
        s.tools.push("get_weather".into());
        s
    }

    #[test]
    fn fragments_rebuild_the_arguments() {
        let call = ToolCall { name: "f".into(), arguments: TOOL_ARGUMENTS };
        assert!(call.fragments().len() > 2);
        assert_eq!(call.fragments().concat(), TOOL_ARGUMENTS);
    }

    #[test]
    fn units_follow_the_behaviour() {
        let s = Script::new("mock-a", "echo: x".into(), 2, Summary::default).unwrap();
        assert_eq!(s.units(), 3);
        assert!(matches!(s.unit(0), Some(Unit::Text(t)) if t == "Hello"));
        assert!(s.unit(3).is_none());
        assert_eq!(s.usage.map(|u| (u.prompt, u.completion)), Some((2, 3)));

        let s = Script::new("m-reason-tool", String::new(), 0, tools).unwrap();
        assert!(matches!(s.unit(0), Some(Unit::Reasoning(_))));
        assert!(matches!(s.unit(2), Some(Unit::ToolStart { index: 0, .. })));
        assert!(matches!(s.unit(s.units() - 1), Some(Unit::ToolArgs { last: true, .. })));
        assert_eq!(s.stop, Stop::ToolUse);
        assert_eq!(s.usage.map(|u| u.reasoning), Some(2));

        assert!(Script::new("m-tool", String::new(), 0, Summary::default).is_err());
        assert_eq!(Script::new("m-tools-2", String::new(), 0, tools).unwrap().tool_calls.len(), 2);
        assert!(Script::new("m-no-usage", String::new(), 0, Summary::default).unwrap().usage.is_none());
    }

    #[test]
    fn an_agent_runs_a_shell_tool_it_knows_then_reads_back_its_result() {
        let asked = |tools: &[&str], result: Option<&str>| {
            let mut s = Summary::default();
            s.tools = tools.iter().map(|t| t.to_string()).collect();
            s.message(true);
            s.message(false);
            s.message(true);
            if let Some(r) = result {
                s.tool_results.push(r.into());
            }
            Script::new("mock-agent", String::new(), 1, || s)
        };
        let first = asked(&["Read", "Bash"], None).unwrap();
        assert_eq!(first.tool_calls[0].name, "Bash");
        assert!(first.tool_calls[0].arguments.contains(AGENT_MARKER));
        assert_eq!(first.stop, Stop::ToolUse);
        let done = asked(&["Bash"], Some("mock-agent-ok\n")).unwrap();
        assert!(done.tool_calls.is_empty());
        assert_eq!(done.reply, "The tool said: mock-agent-ok");
        assert!(asked(&["Read"], None).is_err(), "no shell tool: a 400");
    }

    #[test]
    fn thirds_keep_every_character() {
        for s in ["", "a", "ab", "abcdefg", "héllo wörld"] {
            assert_eq!(thirds(s).concat(), s);
            assert!(thirds(s).len() <= 3);
        }
    }
}
