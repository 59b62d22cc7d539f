//! [`BackendKind`]: the backend families a team file accepts, their default base URLs, key
//! variables and limits-table names.

/// The backend families the team file accepts (`backend.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The in-process simulated backend (no network, no key).
    Simulated,
    /// Any OpenAI-compatible chat completions server at `base_url`.
    ChatCompletion,
    /// OpenAI.
    OpenAi,
    /// Groq.
    Groq,
    /// Together AI.
    Together,
    /// OpenRouter.
    OpenRouter,
    /// Cerebras.
    Cerebras,
    /// Fireworks AI.
    Fireworks,
    /// vLLM server.
    Vllm,
    /// LM Studio server.
    LmStudio,
    /// SGLang server.
    Sglang,
    /// Google Gemini (native REST).
    Gemini,
    /// Anthropic Claude (Messages API).
    Claude,
    /// xAI Grok (its OpenAI-compatible chat completions).
    Grok,
    /// Z.ai (GLM models).
    Zai,
    /// Moonshot AI (Kimi models).
    Moonshot,
    /// NVIDIA NIM.
    NvidiaNim,
    /// Nebius AI Studio.
    Nebius,
    /// Alibaba Cloud Qwen (DashScope compatible mode).
    Qwen,
    /// Poe (`base_url` required, as in MassGen).
    Poe,
}

impl BackendKind {
    /// Every kind, in the order `--list-backends` shows them.
    pub const ALL: [BackendKind; 20] = [
        BackendKind::Simulated,
        BackendKind::ChatCompletion,
        BackendKind::OpenAi,
        BackendKind::Groq,
        BackendKind::Together,
        BackendKind::OpenRouter,
        BackendKind::Cerebras,
        BackendKind::Fireworks,
        BackendKind::Vllm,
        BackendKind::LmStudio,
        BackendKind::Sglang,
        BackendKind::Gemini,
        BackendKind::Claude,
        BackendKind::Grok,
        BackendKind::Zai,
        BackendKind::Moonshot,
        BackendKind::NvidiaNim,
        BackendKind::Nebius,
        BackendKind::Qwen,
        BackendKind::Poe,
    ];

    /// The name used in `backend.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Simulated => "simulated",
            BackendKind::ChatCompletion => "chatcompletion",
            BackendKind::OpenAi => "openai",
            BackendKind::Groq => "groq",
            BackendKind::Together => "together",
            BackendKind::OpenRouter => "openrouter",
            BackendKind::Cerebras => "cerebras",
            BackendKind::Fireworks => "fireworks",
            BackendKind::Vllm => "vllm",
            BackendKind::LmStudio => "lmstudio",
            BackendKind::Sglang => "sglang",
            BackendKind::Gemini => "gemini",
            BackendKind::Claude => "claude",
            BackendKind::Grok => "grok",
            BackendKind::Zai => "zai",
            BackendKind::Moonshot => "moonshot",
            BackendKind::NvidiaNim => "nvidia_nim",
            BackendKind::Nebius => "nebius",
            BackendKind::Qwen => "qwen",
            BackendKind::Poe => "poe",
        }
    }

    /// Parses a `backend.type` value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The provider name used to look up limits (`rate_limits.yaml` top-level key).
    pub fn limits_provider(self) -> &'static str {
        match self {
            BackendKind::Claude => "anthropic",
            k => k.as_str(),
        }
    }

    /// The environment variable read when no `api_key` is configured (`None`: no key needed).
    /// A `chatcompletion` backend picks its variable from its `base_url` instead, as MassGen
    /// does ([`chatcompletion_key_env`](Self::chatcompletion_key_env)).
    pub fn default_key_env(self) -> Option<&'static str> {
        self.key_envs().first().copied()
    }

    /// Every variable read, in order, when no `api_key` is configured: the default first, then
    /// the fallbacks MassGen also reads (`GOOGLE_API_KEY` for Gemini, `KIMI_API_KEY` for
    /// Moonshot).
    pub fn key_envs(self) -> &'static [&'static str] {
        match self {
            BackendKind::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
            BackendKind::Moonshot => &["MOONSHOT_API_KEY", "KIMI_API_KEY"],
            other => match other.primary_key_env() {
                Some(var) => std::slice::from_ref(var),
                None => &[],
            },
        }
    }

    /// The key variable a `chatcompletion` backend at `base_url` reads when no `api_key` is
    /// configured, and whether it is required: the provider's own variable when the host is a
    /// provider MassGen recognises (required), else `OPENAI_API_KEY` when set (optional: local
    /// servers need no key).
    pub fn chatcompletion_key_env(base_url: &str) -> (&'static str, bool) {
        const HOSTS: [(&str, &str); 12] = [
            ("cerebras.ai", "CEREBRAS_API_KEY"),
            ("together.xyz", "TOGETHER_API_KEY"),
            ("fireworks.ai", "FIREWORKS_API_KEY"),
            ("groq.com", "GROQ_API_KEY"),
            ("nebius.com", "NEBIUS_API_KEY"),
            ("nebius.ai", "NEBIUS_API_KEY"),
            ("openrouter.ai", "OPENROUTER_API_KEY"),
            ("z.ai", "ZAI_API_KEY"),
            ("bigmodel.cn", "ZAI_API_KEY"),
            ("nvidia.com", "NGC_API_KEY"),
            ("poe.com", "POE_API_KEY"),
            ("aliyuncs.com", "QWEN_API_KEY"),
        ];
        let host = base_url
            .split("://")
            .nth(1)
            .unwrap_or(base_url)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or("")
            .rsplit('@')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let host = host.split(':').next().unwrap_or("");
        let on = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        if on("moonshot.ai") || on("moonshot.cn") {
            return ("MOONSHOT_API_KEY", true);
        }
        HOSTS
            .iter()
            .find(|(domain, _)| on(domain))
            .map_or(("OPENAI_API_KEY", false), |(_, var)| (*var, true))
    }

    fn primary_key_env(self) -> Option<&'static &'static str> {
        match self {
            BackendKind::Simulated
            | BackendKind::Vllm
            | BackendKind::LmStudio
            | BackendKind::Sglang
            | BackendKind::ChatCompletion => None,
            BackendKind::OpenAi => Some(&"OPENAI_API_KEY"),
            BackendKind::Groq => Some(&"GROQ_API_KEY"),
            BackendKind::Together => Some(&"TOGETHER_API_KEY"),
            BackendKind::OpenRouter => Some(&"OPENROUTER_API_KEY"),
            BackendKind::Cerebras => Some(&"CEREBRAS_API_KEY"),
            BackendKind::Fireworks => Some(&"FIREWORKS_API_KEY"),
            BackendKind::Gemini => Some(&"GEMINI_API_KEY"),
            BackendKind::Claude => Some(&"ANTHROPIC_API_KEY"),
            BackendKind::Grok => Some(&"XAI_API_KEY"),
            BackendKind::Zai => Some(&"ZAI_API_KEY"),
            BackendKind::Moonshot => Some(&"MOONSHOT_API_KEY"),
            BackendKind::NvidiaNim => Some(&"NGC_API_KEY"),
            BackendKind::Nebius => Some(&"NEBIUS_API_KEY"),
            BackendKind::Qwen => Some(&"QWEN_API_KEY"),
            BackendKind::Poe => Some(&"POE_API_KEY"),
        }
    }

    /// The base URL used when none is configured (`None`: `base_url` is required).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            BackendKind::Simulated | BackendKind::ChatCompletion | BackendKind::Poe => None,
            BackendKind::OpenAi => Some("https://api.openai.com/v1"),
            BackendKind::Groq => Some("https://api.groq.com/openai/v1"),
            BackendKind::Together => Some("https://api.together.xyz/v1"),
            BackendKind::OpenRouter => Some("https://openrouter.ai/api/v1"),
            BackendKind::Cerebras => Some("https://api.cerebras.ai/v1"),
            BackendKind::Fireworks => Some("https://api.fireworks.ai/inference/v1"),
            BackendKind::Vllm => Some("http://127.0.0.1:8000/v1"),
            BackendKind::LmStudio => Some("http://127.0.0.1:1234/v1"),
            BackendKind::Sglang => Some("http://127.0.0.1:30000/v1"),
            BackendKind::Gemini => Some("https://generativelanguage.googleapis.com/v1beta"),
            BackendKind::Claude => Some("https://api.anthropic.com/v1"),
            BackendKind::Grok => Some("https://api.x.ai/v1"),
            BackendKind::Zai => Some("https://api.z.ai/api/paas/v4"),
            BackendKind::Moonshot => Some("https://api.moonshot.cn/v1"),
            BackendKind::NvidiaNim => Some("https://integrate.api.nvidia.com/v1"),
            BackendKind::Nebius => Some("https://api.studio.nebius.ai/v1"),
            BackendKind::Qwen => Some("https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
        }
    }
}
