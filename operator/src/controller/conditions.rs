//! The status as a pure function of what the reconcile found, keeping each
//! condition's transition time while its status stays the same.

use super::agents::Count;
use crate::crd::status::{CERTIFICATES_READY, CONFIG_APPLIED, READY};
use crate::crd::{CertificateStatus, Condition, SightlineConfigStatus};

/// How the configuration reached the agents and the relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigOutcome {
    /// Agents running the current generation, out of those counted.
    pub agents: Count,
    /// Relay pods running the current generation, out of those counted.
    pub relays: Count,
    /// Spec fields that wait for a restart (empty when none or when rolled).
    pub restart_pending: Vec<&'static str>,
    /// A rolling restart was triggered in this reconcile.
    pub rolling: bool,
    /// Checksum of the rendered configuration the agents should run.
    pub checksum: String,
}

/// Everything the status is built from.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not the `default` resource.
    NotInUse,
    /// The spec failed validation; the field and why.
    Invalid {
        /// The spec field, as a JSON path.
        field: String,
        /// Why the value is refused.
        message: String,
    },
    /// Applied.
    Applied {
        /// How far the configuration has rolled out.
        config: ConfigOutcome,
        /// The certificates' state, or the reason and message of why they could not be read or issued.
        certificates: Result<Vec<CertificateStatus>, (String, String)>,
    },
}

fn condition(type_: &str, ok: Option<bool>, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: match ok {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        }
        .to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time: None,
        observed_generation: None,
    }
}

/// `ConfigApplied`: True once every counted agent and every counted relay runs the
/// generation. Agents must report (no agent, no data path); relays are optional
/// (the chart can leave the relay out, or run it without the operator's
/// ConfigMap), so none reporting does not hold the condition back.
fn config_condition(generation: i64, config: &ConfigOutcome) -> Condition {
    let (agents, relays) = (config.agents, config.relays);
    let counted = format!(
        "agents {}/{}, relays {}/{} on generation {generation}",
        agents.current, agents.total, relays.current, relays.total
    );
    if !config.restart_pending.is_empty() {
        return condition(
            CONFIG_APPLIED,
            Some(false),
            "RestartRequired",
            format!(
                "{} take effect only after an agent restart (set spec.agent.restartPolicy: Rolling, or restart the agents); {counted}",
                config.restart_pending.join(", ")
            ),
        );
    }
    if agents.total == 0 {
        return condition(
            CONFIG_APPLIED,
            None,
            "NoAgentsReporting",
            format!("configuration generation {generation} rendered; no agent reports its generation yet"),
        );
    }
    if agents.behind() {
        let reason = if config.rolling {
            "RollingRestart"
        } else {
            "AgentsUpdating"
        };
        return condition(CONFIG_APPLIED, Some(false), reason, counted);
    }
    if relays.behind() {
        return condition(CONFIG_APPLIED, Some(false), "RelaysUpdating", counted);
    }
    condition(CONFIG_APPLIED, Some(true), "AllCurrent", counted)
}

/// The new status. `previous` supplies transition times and, for an invalid spec,
/// the conditions of the last good configuration (which stays in force).
pub fn build(
    previous: Option<&SightlineConfigStatus>,
    generation: i64,
    outcome: &Outcome,
    now: &str,
) -> SightlineConfigStatus {
    let previous_conditions = previous.map(|status| status.conditions.as_slice()).unwrap_or_default();
    let mut status = previous.cloned().unwrap_or_default();
    let mut conditions = Vec::new();
    match outcome {
        Outcome::NotInUse => {
            conditions.push(condition(
                READY,
                Some(false),
                "NotInUse",
                format!(
                    "only the SightlineConfig named {:?} is in force",
                    crate::crd::IN_FORCE_NAME
                ),
            ));
            status.certificates.clear();
        }
        Outcome::Invalid { field, message } => {
            conditions.push(condition(
                READY,
                Some(false),
                "InvalidSpec",
                format!("{field}: {message}; the last valid configuration stays in force"),
            ));
            conditions.extend(
                previous_conditions
                    .iter()
                    .filter(|c| c.type_ == CONFIG_APPLIED || c.type_ == CERTIFICATES_READY)
                    .cloned(),
            );
        }
        Outcome::Applied { config, certificates } => {
            let config_condition = config_condition(generation, config);
            let certificates_condition = match certificates {
                Ok(list) => {
                    status.certificates = list.clone();
                    condition(
                        CERTIFICATES_READY,
                        Some(true),
                        "Valid",
                        format!("{} certificates valid", list.len()),
                    )
                }
                Err((reason, message)) => condition(CERTIFICATES_READY, Some(false), reason, message.clone()),
            };
            let ready = if certificates_condition.status != "True" {
                condition(
                    READY,
                    Some(false),
                    "CertificatesNotReady",
                    certificates_condition.message.clone(),
                )
            } else {
                condition(
                    READY,
                    Some(true),
                    "Reconciled",
                    format!("configuration generation {generation} rendered"),
                )
            };
            conditions.push(ready);
            conditions.push(config_condition);
            conditions.push(certificates_condition);
            status.agents_current = Some(config.agents.current);
            status.agents_total = Some(config.agents.total);
            status.relays_current = Some(config.relays.current);
            status.relays_total = Some(config.relays.total);
            status.config_checksum = Some(config.checksum.clone());
        }
    }
    for condition in &mut conditions {
        let before = previous_conditions.iter().find(|c| c.type_ == condition.type_);
        condition.last_transition_time = match before {
            Some(before) if before.status == condition.status => before.last_transition_time.clone(),
            _ => Some(now.to_owned()),
        };
        if condition.observed_generation.is_none() || matches!(outcome, Outcome::Applied { .. }) {
            condition.observed_generation = Some(generation);
        }
    }
    status.conditions = conditions;
    status.observed_generation = Some(generation);
    status
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn applied(current: u32, total: u32, pending: Vec<&'static str>) -> Outcome {
        with_relays(current, total, Count::default(), pending)
    }

    fn with_relays(current: u32, total: u32, relays: Count, pending: Vec<&'static str>) -> Outcome {
        Outcome::Applied {
            config: ConfigOutcome {
                agents: Count { current, total },
                relays,
                restart_pending: pending,
                rolling: false,
                checksum: "c".into(),
            },
            certificates: Ok(vec![]),
        }
    }

    fn find<'a>(status: &'a SightlineConfigStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn transition_times_move_only_when_a_status_changes() {
        let first = build(None, 1, &applied(1, 2, vec![]), "t1");
        assert_eq!(find(&first, CONFIG_APPLIED).status, "False");
        let second = build(Some(&first), 2, &applied(1, 2, vec![]), "t2");
        assert_eq!(
            find(&second, CONFIG_APPLIED).last_transition_time.as_deref(),
            Some("t1")
        );
        assert_eq!(find(&second, CONFIG_APPLIED).observed_generation, Some(2));
        let third = build(Some(&second), 2, &applied(2, 2, vec![]), "t3");
        assert_eq!(find(&third, CONFIG_APPLIED).status, "True");
        assert_eq!(find(&third, CONFIG_APPLIED).last_transition_time.as_deref(), Some("t3"));
        assert_eq!(find(&third, READY).last_transition_time.as_deref(), Some("t1"));
    }

    #[test]
    fn an_invalid_spec_keeps_the_last_good_conditions() {
        let good = build(None, 1, &applied(2, 2, vec![]), "t1");
        let bad = build(
            Some(&good),
            2,
            &Outcome::Invalid {
                field: "spec.relay.dialTimeout".into(),
                message: "must be greater than 0".into(),
            },
            "t2",
        );
        let ready = find(&bad, READY);
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSpec"));
        assert!(
            ready
                .message
                .starts_with("spec.relay.dialTimeout: must be greater than 0")
        );
        assert_eq!(find(&bad, CONFIG_APPLIED), find(&good, CONFIG_APPLIED));
        assert_eq!(bad.observed_generation, Some(2));
    }

    #[test]
    fn pending_restarts_are_named() {
        let status = build(None, 3, &applied(2, 2, vec!["spec.agent.eventBufferCapacity"]), "t");
        let applied = find(&status, CONFIG_APPLIED);
        assert_eq!(applied.reason, "RestartRequired");
        assert!(applied.message.contains("spec.agent.eventBufferCapacity"));
    }

    #[test]
    fn config_applied_needs_every_counted_agent_and_relay_on_the_generation() {
        let relays = |current, total| Count { current, total };
        // (agents current/total, relays, status, reason, message)
        let table = [
            (
                (3, 3),
                relays(2, 2),
                "True",
                "AllCurrent",
                "agents 3/3, relays 2/2 on generation 7",
            ),
            (
                (3, 3),
                relays(1, 2),
                "False",
                "RelaysUpdating",
                "agents 3/3, relays 1/2 on generation 7",
            ),
            (
                (2, 3),
                relays(1, 2),
                "False",
                "AgentsUpdating",
                "agents 2/3, relays 1/2 on generation 7",
            ),
            // No relay reports (left out of the release, or not on the operator's
            // ConfigMap): the agents decide.
            (
                (3, 3),
                relays(0, 0),
                "True",
                "AllCurrent",
                "agents 3/3, relays 0/0 on generation 7",
            ),
            // Relays alone say nothing about the data path.
            (
                (0, 0),
                relays(2, 2),
                "Unknown",
                "NoAgentsReporting",
                "configuration generation 7 rendered; no agent reports its generation yet",
            ),
        ];
        for ((current, total), relays, status, reason, message) in table {
            let built = build(None, 7, &with_relays(current, total, relays, vec![]), "t");
            let applied = find(&built, CONFIG_APPLIED);
            assert_eq!(
                (
                    applied.status.as_str(),
                    applied.reason.as_str(),
                    applied.message.as_str()
                ),
                (status, reason, message)
            );
            assert_eq!(
                (built.relays_current, built.relays_total),
                (Some(relays.current), Some(relays.total))
            );
        }
    }
}
