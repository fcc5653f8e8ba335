//! `reconcile` and `error_policy`: read what is, let the pure functions decide,
//! write the result, report it in the status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use sightline_common::backoff::Backoff;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::conditions::{ConfigOutcome, Outcome, build};
use super::context::Context;
use super::error::{Error, Result};
use super::metrics::{ErrorLabels, RotationLabels, SecretLabels};
use super::objects;
use crate::crd::{CertificateStatus, IN_FORCE_NAME, RestartPolicy, SightlineConfig, TlsMode};
use crate::render::{
    AGENT_CONFIGMAP, GENERATION_KEY, RELAY_CONFIGMAP, RestartSettings, render_agent, render_relay, restart_checksum,
    restart_needed, restart_settings,
};
use crate::tls::plan::{Subjects, rfc3339};
use crate::tls::{Lifetimes, external};
use crate::validate::validate;

/// How soon to look again while agents or relays are still catching up with a generation.
const AGENTS_UPDATING_RECHECK: Duration = Duration::from_secs(10);
/// How soon to look again while every agent is counted as current: an agent that
/// dies renews its Lease no more, which no watch reports, so `ConfigApplied` notices
/// it within the Lease's duration plus this.
const AGENTS_LIVENESS_RECHECK: Duration = Duration::from_secs(60);

/// One reconcile of the SightlineConfig: validate, render, issue certificates, write status.
pub async fn reconcile(config: Arc<SightlineConfig>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_inner(&config, &ctx).await;
    ctx.metrics.duration.observe(started.elapsed().as_secs_f64());
    if result.is_ok()
        && let Ok(mut backoffs) = ctx.backoff.lock()
    {
        backoffs.remove(&config.name_any());
    }
    result
}

/// After an error: count it, then retry with exponential backoff per object.
pub fn error_policy(config: Arc<SightlineConfig>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(name = %config.name_any(), %error, "reconcile failed");
    ctx.metrics
        .failures
        .get_or_create(&ErrorLabels {
            error: error.metric_label().to_owned(),
        })
        .inc();
    let wait = match ctx.backoff.lock() {
        Ok(mut backoffs) => backoffs
            .entry(config.name_any())
            .or_insert_with(|| Backoff::new(Duration::from_millis(500), Duration::from_secs(300), 0.2))
            .next_wait(Duration::ZERO, fastrand::f64()),
        Err(_) => Duration::from_secs(5),
    };
    Action::requeue(wait)
}

async fn publish(ctx: &Context, config: &SightlineConfig, type_: EventType, reason: &str, note: String) {
    publish_about(ctx, config, type_, reason, note, None).await;
}

/// An Event on the resource; `secret` names the Secret it concerns, which also
/// keeps Events about different Secrets apart instead of folding them into one series.
async fn publish_about(
    ctx: &Context,
    config: &SightlineConfig,
    type_: EventType,
    reason: &str,
    note: String,
    secret: Option<&str>,
) {
    let secondary = secret.map(|name| ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Secret".to_owned()),
        name: Some(name.to_owned()),
        namespace: Some(ctx.settings.namespace.clone()),
        ..ObjectReference::default()
    });
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary,
    };
    if let Err(error) = ctx.recorder.publish(&event, &config.object_ref(&())).await {
        warn!(%error, reason, "could not publish an Event");
    }
}

async fn write_status(ctx: &Context, config: &SightlineConfig, outcome: &Outcome) -> Result<()> {
    let generation = config.metadata.generation.unwrap_or(0);
    let status = build(
        config.status.as_ref(),
        generation,
        outcome,
        &rfc3339(OffsetDateTime::now_utc()),
    );
    if config.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<SightlineConfig> = Api::all(ctx.client.clone());
    api.patch_status(
        &config.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// Time from now until `at` (zero when it has passed).
fn until(at: OffsetDateTime) -> Duration {
    Duration::try_from(at - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO)
}

async fn reconcile_inner(config: &SightlineConfig, ctx: &Context) -> Result<Action> {
    let name = config.metadata.name.clone().ok_or(Error::Unnamed)?;
    if name != IN_FORCE_NAME {
        write_status(ctx, config, &Outcome::NotInUse).await?;
        return Ok(Action::await_change());
    }
    let generation = config.metadata.generation.unwrap_or(0);
    let lifetimes = match validate(&config.spec, ctx.settings.propagation) {
        Ok(lifetimes) => lifetimes,
        Err(invalid) => {
            warn!(%invalid, "SightlineConfig rejected; the last valid configuration stays in force");
            publish(ctx, config, EventType::Warning, "InvalidSpec", invalid.to_string()).await;
            // A mistake elsewhere in the spec must not let certificates expire: with
            // valid TLS settings, renewal and repair go on.
            let mut wait = None;
            if let Ok(lifetimes) = crate::validate::lifetimes(&config.spec, ctx.settings.propagation) {
                let owner = config.controller_owner_ref(&()).ok_or(Error::Unnamed)?;
                let (_, next_check) = reconcile_tls(config, ctx, &lifetimes, &owner).await?;
                wait = next_check.map(until);
            }
            write_status(
                ctx,
                config,
                &Outcome::Invalid {
                    field: invalid.field,
                    message: invalid.message,
                },
            )
            .await?;
            return Ok(match wait {
                Some(wait) => Action::requeue(wait.min(ctx.settings.resync).max(Duration::from_secs(1))),
                None => Action::await_change(),
            });
        }
    };
    let owner = config.controller_owner_ref(&()).ok_or(Error::Unnamed)?;
    let config_outcome = apply_configuration(config, ctx, generation, &owner).await?;
    let (certificates, next_check) = reconcile_tls(config, ctx, &lifetimes, &owner).await?;
    for certificate in certificates.iter().flatten() {
        if let Ok(not_after) =
            OffsetDateTime::parse(&certificate.not_after, &time::format_description::well_known::Rfc3339)
        {
            ctx.metrics
                .not_after
                .get_or_create(&SecretLabels {
                    secret: certificate.secret.clone(),
                })
                .set(not_after.unix_timestamp());
        }
    }
    let behind = config_outcome.agents.behind() || config_outcome.relays.behind();
    let counted = config_outcome.agents.total > 0 || config_outcome.relays.total > 0;
    write_status(
        ctx,
        config,
        &Outcome::Applied {
            config: config_outcome,
            certificates,
        },
    )
    .await?;
    let mut wait = ctx.settings.resync;
    if let Some(at) = next_check {
        wait = wait.min(until(at));
    }
    if counted {
        wait = wait.min(AGENTS_LIVENESS_RECHECK);
    }
    if behind {
        wait = wait.min(AGENTS_UPDATING_RECHECK);
    }
    Ok(Action::requeue(wait.max(Duration::from_secs(1))))
}

/// Renders and applies both ConfigMaps; rolls the agents when asked to and needed.
async fn apply_configuration(
    config: &SightlineConfig,
    ctx: &Context,
    generation: i64,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<ConfigOutcome> {
    let spec = &config.spec;
    let namespace = &ctx.settings.namespace;
    let nodes = objects::node_labels(&ctx.client).await?;
    let agent = render_agent(spec, generation, &nodes)?;
    let relay = render_relay(spec, generation)?;
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);

    let wanted = restart_settings(spec);
    let running: RestartSettings = configmaps
        .get_opt(AGENT_CONFIGMAP)
        .await?
        .and_then(|cm| cm.metadata.annotations)
        .and_then(|annotations| annotations.get(objects::RUNNING_RESTART_ANNOTATION).cloned())
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_else(|| wanted.clone());
    let mut pending = restart_needed(&running, &wanted);
    let mut recorded = running;
    let mut rolling = false;
    if !pending.is_empty() && spec.agent.restart_policy == RestartPolicy::Rolling {
        let checksum = restart_checksum(&wanted);
        objects::roll_agents(&ctx.client, namespace, &ctx.settings.agent_daemonset, &checksum).await?;
        info!(fields = ?pending, "rolling restart of the agents");
        publish(
            ctx,
            config,
            EventType::Normal,
            "RollingRestart",
            format!("{} changed; agents restart one by one", pending.join(", ")),
        )
        .await;
        pending.clear();
        recorded = wanted.clone();
        rolling = true;
    }
    let annotations = |extra: Option<(String, String)>| {
        let mut map = BTreeMap::from([(format!("sightline.dev/{GENERATION_KEY}"), generation.to_string())]);
        map.extend(extra);
        map
    };
    let recorded_json = serde_json::to_string(&recorded).unwrap_or_default();
    objects::apply_configmap(
        &configmaps,
        AGENT_CONFIGMAP,
        agent.data,
        annotations(Some((objects::RUNNING_RESTART_ANNOTATION.to_owned(), recorded_json))),
        owner,
    )
    .await?;
    objects::apply_configmap(&configmaps, RELAY_CONFIGMAP, relay, annotations(None), owner).await?;
    let node_names = nodes.keys().cloned().collect();
    let agents = objects::agents_on_generation(&ctx.client, namespace, generation, &node_names).await?;
    let relays =
        objects::relays_on_generation(&ctx.client, namespace, generation, &ctx.settings.relay_pod_selector).await?;
    Ok(ConfigOutcome {
        agents,
        relays,
        restart_pending: pending,
        rolling,
        checksum: restart_checksum(&wanted),
    })
}

type CertificatesResult = Result<Vec<CertificateStatus>, (String, String)>;

/// Issues and rotates (`Auto`) or checks (`External`) the TLS Secrets.
async fn reconcile_tls(
    config: &SightlineConfig,
    ctx: &Context,
    lifetimes: &Lifetimes,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<(CertificatesResult, Option<OffsetDateTime>)> {
    let spec = &config.spec;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let read = objects::read_secrets(&secrets).await?;
    let subjects = Subjects {
        cluster: spec.cluster_name.clone(),
        extra_dns_names: spec.tls.extra_dns_names.clone(),
        extra_ip_addresses: spec.tls.extra_ip_addresses.clone(),
    };
    let now = OffsetDateTime::now_utc();
    match spec.tls.mode {
        TlsMode::Auto => {
            let plan = crate::tls::plan::plan(&read.observed, &subjects, lifetimes, now)?;
            for write in &plan.writes {
                objects::write_secret(&secrets, write, &read, owner).await?;
            }
            for event in &plan.events {
                info!(secret = event.secret, reason = event.reason, "{}", event.message);
                let kind = match event.reason {
                    "CertificateRenewed" => Some("leaf"),
                    "CaRotated" => Some("ca"),
                    _ => None,
                };
                if let Some(kind) = kind {
                    ctx.metrics
                        .rotations
                        .get_or_create(&RotationLabels { kind: kind.to_owned() })
                        .inc();
                }
                publish_about(
                    ctx,
                    config,
                    EventType::Normal,
                    event.reason,
                    event.message.clone(),
                    Some(event.secret),
                )
                .await;
            }
            Ok((Ok(plan.certificates), Some(plan.next_check)))
        }
        TlsMode::External => {
            let (statuses, problems) = external::check(&read.observed, &subjects, lifetimes.renew_before, now);
            match problems.first() {
                None => Ok((Ok(statuses), None)),
                Some(first) => {
                    let message = problems
                        .iter()
                        .map(|problem| problem.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ");
                    Ok((Err((first.reason.to_owned(), message)), None))
                }
            }
        }
    }
}
