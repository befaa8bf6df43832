//! The dashboard, `GET /scheduler/ui`: every schedule with its trigger in words, its next
//! fires, its state and its recent fires (why a fire did not run included), with pause,
//! resume, run now and remove; live, through the event stream.
//!
//! The page itself holds no data and is served without credentials; its script fetches the
//! schedules (`GET /scheduler/ui/schedules`, HTML rendered here) and the events with the
//! token the user gives it, and sends actions to the REST API, so the page has the API's
//! rules: read-only when the API is, refused (with a message on the page) without the token.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use scheduler_core::{FireRecord, FireState, Schedule, SchedulerHandle, SchedulerState};

/// The most schedules the page lists; the rest are counted.
const MAX_SCHEDULES: usize = 200;
/// Fires shown per schedule.
const RECENT_FIRES: usize = 8;
/// Next fire times shown per schedule.
const NEXT_FIRES: usize = 5;

const STYLE: &str = r#"
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #6e7781;
  --line: #d0d7de; --card: #ffffff; --bg: #f6f8fa; --accent: #0969da; }
@media (prefers-color-scheme: dark) { :root { --card: #161b22; --bg: #0d1117; --line: #30363d;
  --muted: #8b949e; --ok: #3fb950; --bad: #f85149; --warn: #d29922; --accent: #58a6ff; } }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  background: var(--bg); }
header.top { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center;
  padding: .8rem 1rem; border-bottom: 1px solid var(--line); background: var(--card); }
header.top h1 { font-size: 1.15rem; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 1rem; }
#live { font-size: .85rem; color: var(--muted); }
#live.on::before { content: "●"; color: var(--ok); margin-right: .3rem; }
#live.off::before { content: "●"; color: var(--warn); margin-right: .3rem; }
#notice { margin: 0 0 1rem; padding: .6rem .8rem; border-radius: 6px; border: 1px solid var(--line);
  background: var(--card); }
#notice.error { border-color: var(--bad); color: var(--bad); }
#notice.warn { border-color: var(--warn); }
#notice.ok { border-color: var(--ok); }
#auth { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-bottom: 1rem; }
#auth input { flex: 1 1 14rem; padding: .45rem; border: 1px solid var(--line); border-radius: 6px;
  background: var(--card); color: inherit; }
button { font: inherit; padding: .35rem .8rem; border-radius: 6px; border: 1px solid var(--line);
  background: var(--card); color: inherit; cursor: pointer; }
button:hover { border-color: var(--accent); }
button.danger { color: var(--bad); }
.scheduler { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; margin-bottom: 1rem; color: var(--muted); }
.scheduler .state { font-weight: 600; }
.state-running { color: var(--ok); } .state-paused { color: var(--warn); } .state-stopped { color: var(--bad); }
article.schedule { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: .8rem 1rem; margin-bottom: 1rem; }
article.schedule h2 { font-size: 1.05rem; margin: 0; display: inline; }
.badge { display: inline-block; font-size: .75rem; padding: .05rem .5rem; border-radius: 1rem;
  border: 1px solid currentColor; margin-left: .4rem; vertical-align: middle; }
.badge.scheduled { color: var(--ok); } .badge.paused, .badge.waiting { color: var(--warn); }
.badge.running { color: var(--accent); }
.trigger { font-size: 1.05rem; margin: .3rem 0; }
.meta, .next { color: var(--muted); font-size: .9rem; margin: .2rem 0; }
.next time { white-space: nowrap; }
.actions { display: flex; flex-wrap: wrap; gap: .4rem; margin: .6rem 0; }
table.fires { width: 100%; border-collapse: collapse; font-size: .88rem; }
table.fires td { padding: .25rem .4rem; border-top: 1px solid var(--line); vertical-align: top; }
table.fires td.when { white-space: nowrap; }
.succeeded { color: var(--ok); } .failed, .lost, .aborted { color: var(--bad); }
.missed, .skipped { color: var(--warn); } .running, .claimed, .queued, .waiting { color: var(--accent); }
.detail { color: inherit; word-break: break-word; }
.empty { color: var(--muted); }
code { font-size: .85em; }
"#;

const SCRIPT: &str = r#"
(() => {
  const base = location.pathname.replace(/\/ui\/?$/, '');
  const $ = (selector) => document.querySelector(selector);
  const KEY = 'apsched.token';
  let token = sessionStorage.getItem(KEY) || '';
  let stream = null;
  const headers = () => (token ? { Authorization: 'Bearer ' + token } : {});
  let wake = null;
  const sleep = (ms) => new Promise((r) => {
    wake = r;
    setTimeout(r, ms);
  });
  const notice = (text, kind) => {
    const n = $('#notice');
    n.textContent = text || '';
    n.className = kind || '';
    n.hidden = !text;
  };
  const live = (on) => {
    const l = $('#live');
    l.className = on ? 'on' : 'off';
    l.textContent = on ? 'live' : 'reconnecting';
  };
  async function refresh() {
    let r;
    try {
      r = await fetch(base + '/ui/schedules', { headers: headers() });
    } catch (e) {
      notice('The scheduler does not answer.', 'error');
      return;
    }
    if (r.status === 401) {
      $('#auth').hidden = false;
      notice(token ? 'That token is not accepted.' : 'This scheduler asks for a token.', 'warn');
      return;
    }
    if (!r.ok) {
      notice('Could not load the schedules: HTTP ' + r.status, 'error');
      return;
    }
    $('#auth').hidden = true;
    $('#schedules').innerHTML = await r.text();
    $('#updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  }
  let pending = null;
  const soon = () => {
    clearTimeout(pending);
    pending = setTimeout(refresh, 200);
  };
  async function listen() {
    for (;;) {
      stream = new AbortController();
      try {
        const r = await fetch(base + '/events', { headers: headers(), signal: stream.signal });
        if (r.ok) {
          live(true);
          const reader = r.body.getReader();
          const decoder = new TextDecoder();
          let buffer = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += decoder.decode(value, { stream: true });
            let end;
            while ((end = buffer.indexOf('\n\n')) >= 0) {
              const chunk = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              for (const line of chunk.split('\n')) {
                if (!line.startsWith('data: ')) continue;
                const event = JSON.parse(line.slice(6));
                if (event.type === 'lagged') soon();
                else if (event.type !== 'connected') soon();
              }
            }
          }
        }
      } catch (e) {}
      live(false);
      await sleep(3000);
    }
  }
  document.addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-path]');
    if (!button) return;
    if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
    let r;
    try {
      r = await fetch(base + '/' + button.dataset.path, { method: button.dataset.method, headers: headers() });
    } catch (e) {
      notice('The scheduler does not answer.', 'error');
      return;
    }
    if (r.ok) {
      notice(button.dataset.done, 'ok');
      refresh();
      return;
    }
    let message = 'HTTP ' + r.status;
    try {
      message = (await r.json()).error_message || message;
    } catch (e) {}
    notice('Refused: ' + message, 'error');
  });
  $('#auth-form').addEventListener('submit', (event) => {
    event.preventDefault();
    token = $('#token').value.trim();
    sessionStorage.setItem(KEY, token);
    $('#token').value = '';
    notice('');
    refresh();
    if (stream) stream.abort();
    if (wake) wake();
  });
  $('#forget').addEventListener('click', () => {
    token = '';
    sessionStorage.removeItem(KEY);
    $('#auth').hidden = false;
    notice('Token forgotten: changes are refused until you give it again.', 'warn');
    if (stream) stream.abort();
    if (wake) wake();
  });
  $('#auth').hidden = !!token;
  refresh();
  listen();
})();
"#;

/// The page: no data of its own, so served to anyone; its script brings the rest.
pub(crate) fn page() -> String {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Scheduler" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header.top {
                    h1 { "Scheduler" }
                    span #live.off { "connecting" }
                    span #updated .meta {}
                    button #forget type="button" { "Forget token" }
                }
                main {
                    p #notice hidden {}
                    form #auth-form {
                        div #auth hidden {
                            label for="token" { "API token" }
                            input #token type="password" autocomplete="off"
                                placeholder="the token this scheduler's API asks for";
                            button type="submit" { "Use token" }
                        }
                    }
                    div #schedules { p.empty { "Loading…" } }
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    };
    markup.into_string()
}

fn when(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// What a fire of the history says, beyond its state.
fn detail(fire: &FireRecord) -> String {
    if let Some(error) = &fire.error {
        return error.clone();
    }
    if let Some(reason) = &fire.reason {
        return reason.clone();
    }
    match (fire.started_at, fire.finished_at) {
        (Some(start), Some(end)) => {
            let ms = (end - start).num_milliseconds();
            let lateness = fire
                .started_at
                .map(|s| (s - fire.nominal_time).num_milliseconds().max(0))
                .unwrap_or(0);
            format!("ran {ms} ms, started {lateness} ms late")
        }
        (Some(_), None) => "started, running".to_owned(),
        _ => String::new(),
    }
}

/// The overlap policy in words; nothing for the default (skip).
fn overlap_words(overlap: scheduler_core::Overlap) -> Option<String> {
    use scheduler_core::Overlap;
    Some(match overlap {
        Overlap::QueueOne => "overlap: queue one".to_owned(),
        Overlap::QueueAll { limit } => format!("overlap: queue all (up to {limit})"),
        Overlap::CancelRunning { grace } => {
            format!(
                "overlap: cancel the run going ({} s grace)",
                grace.as_secs_f64()
            )
        }
        Overlap::AllowAll => "overlap: allow all".to_owned(),
        _ => return None,
    })
}

/// The state a schedule's card shows.
fn state(schedule: &Schedule, fires: &[FireRecord]) -> &'static str {
    if fires
        .iter()
        .any(|f| matches!(f.state, FireState::Running | FireState::Claimed))
    {
        "running"
    } else if schedule.paused() {
        "paused"
    } else if fires.iter().any(|f| f.state == FireState::Waiting) {
        "waiting"
    } else {
        "scheduled"
    }
}

fn card(schedule: &Schedule, next: &[DateTime<Utc>], fires: &[FireRecord], zone: Tz) -> Markup {
    let zone = crate::dto::zone_of(schedule.trigger(), zone);
    let id = utf8_percent_encode(schedule.id(), NON_ALPHANUMERIC).to_string();
    let state = state(schedule, fires);
    html! {
        article.schedule data-id=(schedule.id()) data-state=(state) {
            header {
                h2 { (schedule.name()) }
                @if schedule.name() != schedule.id() { " " code { (schedule.id()) } }
                span class={ "badge " (state) } { (state) }
            }
            p.trigger { (schedule.trigger().describe()) }
            p.meta {
                "job " code { (schedule.job_name().unwrap_or("(a job given in code)")) }
                " · max_instances " (schedule.max_instances())
                @if let Some(overlap) = overlap_words(schedule.overlap()) { " · " (overlap) }
                @if let Some(grace) = schedule.misfire_grace_time() {
                    " · misfire grace " (format!("{} s", grace.as_secs_f64()))
                } @else { " · no misfire limit" }
            }
            p.next {
                @if schedule.paused() {
                    "Paused: no next run until resumed."
                } @else if next.is_empty() {
                    "No next run."
                } @else {
                    "Next: "
                    @for (i, t) in next.iter().enumerate() {
                        @if i > 0 { ", " }
                        time datetime=(t.to_rfc3339()) { (when(*t, zone)) }
                    }
                }
            }
            div.actions {
                @if schedule.paused() {
                    button type="button" data-method="POST" data-path={ "jobs/" (id) "/resume" }
                        data-done={ "Resumed " (schedule.id()) "." } { "Resume" }
                } @else {
                    button type="button" data-method="POST" data-path={ "jobs/" (id) "/pause" }
                        data-done={ "Paused " (schedule.id()) "." } { "Pause" }
                }
                button type="button" data-method="POST" data-path={ "jobs/" (id) "/run" }
                    data-done={ "A run of " (schedule.id()) " is queued." } { "Run now" }
                button.danger type="button" data-method="DELETE" data-path={ "jobs/" (id) }
                    data-confirm={ "Remove " (schedule.id()) "?" }
                    data-done={ "Removed " (schedule.id()) "." } { "Remove" }
            }
            @if fires.is_empty() {
                p.empty { "No fires yet." }
            } @else {
                table.fires {
                    tbody {
                        @for fire in fires {
                            tr class=(fire.state.as_str()) {
                                td.when { time datetime=(fire.nominal_time.to_rfc3339()) { (when(fire.nominal_time, zone)) } }
                                td { (fire.state.as_str()) }
                                td.detail { (detail(fire)) }
                                td.owner { (fire.owner.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The schedules, as the page shows them (`GET /scheduler/ui/schedules`).
pub(crate) async fn schedules(handle: &SchedulerHandle) -> String {
    let zone = handle.timezone();
    let state = match handle.state() {
        SchedulerState::Running => "running",
        SchedulerState::Paused => "paused",
        SchedulerState::NotStarted => "not started",
        _ => "stopped",
    };
    let schedules = match handle.list().await {
        Ok(list) => list,
        Err(error) => {
            return html! { p #notice.error { "The scheduler cannot list its schedules: " (error) } }
                .into_string();
        }
    };
    let mut cards = Vec::new();
    let mut owners = BTreeSet::new();
    for schedule in schedules.iter().take(MAX_SCHEDULES) {
        let next = handle
            .next_fire_times(schedule.id(), NEXT_FIRES)
            .await
            .unwrap_or_default();
        let fires = handle
            .runs(schedule.id(), RECENT_FIRES)
            .await
            .unwrap_or_default();
        owners.extend(fires.iter().filter_map(|f| f.owner.clone()));
        cards.push(card(schedule, &next, &fires, zone));
    }
    let state_class = format!("state state-{}", state.replace(' ', "-"));
    html! {
        div.scheduler {
            span class=(state_class) { "Scheduler " (state) }
            span { "zone " (zone.name()) }
            span { (schedules.len()) " schedule" @if schedules.len() != 1 { "s" } }
            @if owners.len() > 1 {
                span.instances { "instances: " (owners.iter().cloned().collect::<Vec<_>>().join(", ")) }
            }
        }
        @if schedules.is_empty() {
            p.empty { "No schedules." }
        }
        @for card in cards { (card) }
        @if schedules.len() > MAX_SCHEDULES {
            p.empty { "… and " (schedules.len() - MAX_SCHEDULES) " more (the REST API lists them all)." }
        }
    }
    .into_string()
}
