//! MassGen's own configuration keys whose feature massgen-rs does not have, by section, each
//! with what the team or agent will lack. A file using them loads with one warning per key
//! (an error under `--strict`); a key found neither here nor among the keys massgen-rs reads
//! is an error. The names are MassGen 0.1.97's (its shipped configs, validator and backends).

/// Where a key sits in a team file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// The top level of the file.
    Top,
    /// One agent (`agents[i]` / `agent`).
    Agent,
    /// `agents[i].backend`.
    Backend,
    /// `orchestrator`.
    Orchestrator,
    /// `orchestrator.coordination`.
    Coordination,
    /// `timeout_settings`.
    Timeouts,
    /// `ui`.
    Ui,
    /// A section of massgen-rs's own (`rate_limit`): no MassGen keys.
    Own,
}

const WORKSPACE: &str = "workspaces are not implemented: the agent gets no working directory and cannot read or write files";
const MCP: &str = "MCP servers are not implemented: the agent gets no MCP tools";
const CUSTOM_TOOLS: &str =
    "custom tools are not implemented: the agent has only the new_answer and vote tools";
const TOOL_FILTER: &str =
    "tool filtering has no effect: the agent has only the new_answer and vote tools";
const CODE: &str =
    "code and command execution are not implemented: the agent cannot run code or commands";
const WEB: &str = "web search is not implemented: the agent cannot search the web";
const UPLOAD: &str = "file upload is not implemented: the agent does not see these files";
const MEDIA: &str = "media tools are not implemented: the agent cannot create or read images, audio, video or files beyond text";
const CLI_AGENT: &str =
    "settings of MassGen's CLI and framework agents (Claude Code, Codex, AG2) have no effect here";
const DEBUG: &str = "MassGen's debugging aids are not implemented; no effect";
const TRANSPORT: &str = "MassGen's WebSocket transport is not implemented: requests go over HTTPS";
const NLIP: &str = "NLIP messaging is not implemented; no effect";
const MEMORY: &str = "memory (conversation memory, persistent memory, compression) is not implemented: agents keep no memory between runs";
const HOOKS: &str = "hooks are not implemented: no hook runs";
const SNAPSHOTS: &str =
    "workspace snapshots are not implemented: agents do not see each other's workspaces";
const CONTEXT: &str = "context paths are not implemented: agents cannot read these paths";
const CHECKPOINT: &str = "checkpoints are not implemented";
const SUBAGENTS: &str = "subagents are not implemented: each agent works alone";
const COORDINATION: &str = "MassGen's extended coordination (planning, skills, subagents, broadcasts, checklists, evaluators, restarts) is not implemented: the team runs the answer-and-vote loop only";
const ORCH_TUNING: &str = "this coordination setting is not implemented: the team runs the answer-and-vote loop with massgen-rs's defaults";
const ROUND_TIMEOUTS: &str = "per-round timeouts are not implemented: only the whole-run limit (orchestrator_timeout_seconds) applies";
const UI_ONLY: &str = "a setting of MassGen's terminal display; no effect here";
const LEGACY: &str = "MassGen 0.1.97 does not read this key either; no effect";

/// Top-level MassGen keys.
const TOP: &[(&str, &str)] = &[
    ("memory", MEMORY),
    ("hooks", HOOKS),
    ("checkpoint", CHECKPOINT),
    ("nlip", NLIP),
    (
        "display",
        "MassGen 0.1.97 does not read this key either (it reads `ui.display_type`); no effect",
    ),
    (
        "timeout",
        "MassGen 0.1.97 does not read this key either (it reads `timeout_settings.orchestrator_timeout_seconds`); no effect",
    ),
    (
        "task",
        "MassGen 0.1.97 does not read this key either; no effect (the question comes from the command line)",
    ),
];

/// Agent-level MassGen keys.
const AGENT: &[(&str, &str)] = &[
    ("append_system_prompt", CLI_AGENT),
    (
        "subtask",
        "task decomposition is not implemented: every agent answers the whole question",
    ),
    ("subagent_agents", SUBAGENTS),
    ("main_agent", CHECKPOINT),
    ("memory", MEMORY),
    ("hooks", HOOKS),
    ("enable_nlip", NLIP),
    ("nlip", NLIP),
];

/// Backend-level MassGen keys (the options of its tools, workspaces and CLI agents).
const BACKEND: &[(&str, &str)] = &[
    ("cwd", WORKSPACE),
    ("agent_temporary_workspace", WORKSPACE),
    ("agent_temporary_workspace_parent", WORKSPACE),
    ("context_paths", CONTEXT),
    ("context_write_access_enabled", CONTEXT),
    ("enforce_read_before_delete", WORKSPACE),
    ("use_two_tier_workspace", WORKSPACE),
    ("write_mode", WORKSPACE),
    ("mcp_servers", MCP),
    ("direct_mcp_servers", MCP),
    ("enable_mcp_command_line", CODE),
    ("exclude_file_operation_mcps", MCP),
    ("use_mcpwrapped_for_tool_filtering", MCP),
    ("use_no_roots_wrapper", MCP),
    ("command_line_allowed_commands", CODE),
    ("command_line_blocked_commands", CODE),
    ("command_line_execution_mode", CODE),
    ("command_line_docker_image", CODE),
    ("command_line_docker_memory_limit", CODE),
    ("command_line_docker_cpu_limit", CODE),
    ("command_line_docker_network_mode", CODE),
    ("command_line_docker_enable_sudo", CODE),
    ("command_line_docker_credentials", CODE),
    ("command_line_docker_packages", CODE),
    ("command_line_srt_network_allowed_domains", CODE),
    ("command_line_srt_deny_read", CODE),
    ("command_line_srt_allow_unix_sockets", CODE),
    ("command_line_srt_read_mode", CODE),
    ("command_line_srt_allow_read", CODE),
    ("enable_code_execution", CODE),
    ("enable_code_interpreter", CODE),
    ("enable_code_based_tools", CUSTOM_TOOLS),
    ("custom_tools", CUSTOM_TOOLS),
    ("custom_tools_path", CUSTOM_TOOLS),
    ("auto_discover_custom_tools", CUSTOM_TOOLS),
    ("exclude_custom_tools", CUSTOM_TOOLS),
    ("shared_tools_directory", CUSTOM_TOOLS),
    ("concurrent_tool_execution", CUSTOM_TOOLS),
    ("max_concurrent_tools", CUSTOM_TOOLS),
    ("enable_strict_tool_use", CUSTOM_TOOLS),
    ("enable_programmatic_flow", CUSTOM_TOOLS),
    ("enable_tool_search", TOOL_FILTER),
    ("tool_search_variant", TOOL_FILTER),
    ("allowed_tools", TOOL_FILTER),
    ("disallowed_tools", TOOL_FILTER),
    ("exclude_tools", TOOL_FILTER),
    ("enable_web_search", WEB),
    ("enable_x_search", WEB),
    ("upload_files", UPLOAD),
    ("enable_image_generation", MEDIA),
    ("enable_audio_generation", MEDIA),
    ("enable_video_generation", MEDIA),
    ("enable_file_generation", MEDIA),
    ("enable_multimodal_tools", MEDIA),
    ("permission_mode", CLI_AGENT),
    ("permissions", CLI_AGENT),
    ("agent_config", CLI_AGENT),
    ("group_config", CLI_AGENT),
    ("hooks", HOOKS),
    ("debug_delay_seconds", DEBUG),
    ("debug_delay_after_n_tools", DEBUG),
    ("websocket_mode", TRANSPORT),
    ("enable_nlip", NLIP),
    ("nlip", NLIP),
];

/// Orchestrator-level MassGen keys.
const ORCHESTRATOR: &[(&str, &str)] = &[
    ("snapshot_storage", SNAPSHOTS),
    ("agent_temporary_workspace", SNAPSHOTS),
    ("session_storage", SNAPSHOTS),
    ("context_paths", CONTEXT),
    ("coordination", COORDINATION),
    ("max_orchestration_restarts", ORCH_TUNING),
    ("fairness_enabled", ORCH_TUNING),
    ("fairness_lead_cap_answers", ORCH_TUNING),
    ("max_midstream_injections_per_round", ORCH_TUNING),
    ("defer_peer_updates_until_restart", ORCH_TUNING),
    ("defer_voting_until_all_answered", ORCH_TUNING),
    (
        "allow_midstream_peer_updates_before_checklist_submit",
        ORCH_TUNING,
    ),
    ("disable_injection", ORCH_TUNING),
    ("voting_threshold", ORCH_TUNING),
    ("skip_voting", ORCH_TUNING),
    ("skip_coordination_rounds", ORCH_TUNING),
    ("max_new_answers_global", ORCH_TUNING),
    ("max_turns", ORCH_TUNING),
    ("coordination_mode", ORCH_TUNING),
    ("presenter_agent", ORCH_TUNING),
    ("final_answer_strategy", ORCH_TUNING),
    ("checklist_first_answer", ORCH_TUNING),
    ("checklist_require_gap_report", ORCH_TUNING),
    ("gap_report_mode", ORCH_TUNING),
    ("max_checklist_calls_per_round", ORCH_TUNING),
    ("interactive_mode", ORCH_TUNING),
    ("type", ORCH_TUNING),
    ("timeout", ORCH_TUNING),
    ("debug_final_answer", DEBUG),
    (
        "dspy",
        "question paraphrasing (DSPy) is not implemented: every agent gets the question as written",
    ),
    ("skills_directory", COORDINATION),
    ("docker", CODE),
    ("enable_multimodal_tools", MEDIA),
    ("multimodal_config", MEDIA),
    ("image_generation_backend", MEDIA),
    ("video_generation_backend", MEDIA),
    ("audio_generation_backend", MEDIA),
    ("enable_nlip", NLIP),
    ("nlip", NLIP),
    ("nlip_config", NLIP),
];

/// `orchestrator.coordination` keys (MassGen 0.1.97's full list: none is implemented).
const COORDINATION_KEYS: &[&str] = &[
    "auto_trace_analysis",
    "background_subagents",
    "bootstrap_max_per_agent_per_round",
    "bootstrap_max_total",
    "broadcast",
    "broadcast_sensitivity",
    "broadcast_timeout",
    "broadcast_wait_by_default",
    "checklist_criteria_inline",
    "checklist_criteria_preset",
    "checkpoint_enabled",
    "checkpoint_gated_patterns",
    "checkpoint_guidance",
    "checkpoint_mode",
    "compression_target_ratio",
    "criteria_mode",
    "disable_final_only_round_capture_fallback",
    "drift_conflict_policy",
    "enable_agent_task_planning",
    "enable_changedoc",
    "enable_evaluator_personas",
    "enable_execution_trace_analyzer",
    "enable_memory_filesystem_mode",
    "enable_novelty_on_iteration",
    "enable_planning_mode",
    "enable_quality_rethink_on_iteration",
    "enable_subagents",
    "evaluation_criteria_generator",
    "evolving_criteria",
    "evolving_criteria_max_evolutions",
    "evolving_criteria_min_high_score_count",
    "evolving_criteria_score_threshold",
    "evolving_criteria_timeout",
    "fast_iteration_mode",
    "improvements",
    "learning_capture_mode",
    "load_previous_session_skills",
    "massgen_skills",
    "max_broadcasts_per_agent",
    "max_internal_fix_loops",
    "max_orchestration_restarts",
    "max_tasks_per_plan",
    "max_verifications_per_round",
    "novelty_injection",
    "orchestrator_managed_round_evaluator",
    "persona_generator",
    "plan_depth",
    "plan_target_chunks",
    "plan_target_steps",
    "planning_mode_instruction",
    "pre_collab_voting_threshold",
    "prompt_improver",
    "response_depth",
    "resume_from_log",
    "round_evaluator_before_checklist",
    "round_evaluator_refine",
    "round_evaluator_skip_synthesis",
    "round_evaluator_transformation_pressure",
    "skills_directory",
    "skip_redundant_scaffolding",
    "standalone_checkpoint",
    "subagent_default_timeout",
    "subagent_host_launch_prefix",
    "subagent_max_concurrent",
    "subagent_max_timeout",
    "subagent_min_timeout",
    "subagent_orchestrator",
    "subagent_round_timeouts",
    "subagent_runtime_fallback_mode",
    "subagent_runtime_mode",
    "subagent_types",
    "task_decomposer",
    "task_planning_filesystem_mode",
    "use_skills",
    "use_two_tier_workspace",
    "web_review",
    "write_mode",
    "async_subagents",
];

/// `timeout_settings` keys.
const TIMEOUTS: &[(&str, &str)] = &[
    ("initial_round_timeout_seconds", ROUND_TIMEOUTS),
    ("subsequent_round_timeout_seconds", ROUND_TIMEOUTS),
    ("round_timeout_grace_seconds", ROUND_TIMEOUTS),
];

/// `ui` keys.
const UI: &[(&str, &str)] = &[
    ("theme", UI_ONLY),
    ("display_kwargs", UI_ONLY),
    ("automation_mode", UI_ONLY),
    ("skip_agent_selector", UI_ONLY),
    ("use_orchestrator_for_single_agent", UI_ONLY),
    ("type", LEGACY),
];

/// What the team or agent lacks when `key` is set in `section`, if `key` is a MassGen key
/// massgen-rs accepts without having its feature.
pub(crate) fn lacking(section: Section, key: &str) -> Option<&'static str> {
    let table = match section {
        Section::Top => TOP,
        Section::Agent => AGENT,
        Section::Backend => BACKEND,
        Section::Orchestrator => ORCHESTRATOR,
        Section::Timeouts => TIMEOUTS,
        Section::Ui => UI,
        Section::Own => return None,
        Section::Coordination => {
            return COORDINATION_KEYS.contains(&key).then_some(COORDINATION);
        }
    };
    table.iter().find(|(k, _)| *k == key).map(|(_, why)| *why)
}

/// MassGen backend types massgen-rs cannot run, with why.
pub(crate) const UNSUPPORTED_BACKENDS: [(&str, &str); 10] = [
    (
        "azure_openai",
        "Azure OpenAI's deployment API is not implemented",
    ),
    (
        "claude_code",
        "it wraps the Claude Code CLI; massgen-rs speaks provider APIs only",
    ),
    (
        "codex",
        "it wraps the Codex CLI; massgen-rs speaks provider APIs only",
    ),
    (
        "gemini_cli",
        "it wraps the Gemini CLI; massgen-rs speaks provider APIs only",
    ),
    (
        "antigravity_cli",
        "it wraps the Antigravity CLI; massgen-rs speaks provider APIs only",
    ),
    (
        "copilot",
        "it wraps the GitHub Copilot SDK; massgen-rs speaks provider APIs only",
    ),
    ("ag2", "framework agents (AG2) are not implemented"),
    ("autogen", "framework agents (AG2) are not implemented"),
    (
        "uitars",
        "the UI-TARS computer-use backend is not implemented",
    ),
    (
        "inference",
        "use `type: vllm` or `type: sglang` with its base_url",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_know_their_keys() {
        assert_eq!(lacking(Section::Backend, "cwd"), Some(WORKSPACE));
        assert_eq!(
            lacking(Section::Orchestrator, "snapshot_storage"),
            Some(SNAPSHOTS)
        );
        assert_eq!(
            lacking(Section::Coordination, "use_skills"),
            Some(COORDINATION)
        );
        assert_eq!(lacking(Section::Backend, "snapshot_storage"), None);
        assert_eq!(lacking(Section::Top, "modle"), None);
    }

    #[test]
    fn every_reason_says_what_is_missing_or_that_nothing_changes() {
        for table in [TOP, AGENT, BACKEND, ORCHESTRATOR, TIMEOUTS, UI] {
            for (key, why) in table {
                assert!(
                    why.contains("not implemented") || why.contains("no effect"),
                    "{key}: {why}"
                );
            }
        }
    }
}
