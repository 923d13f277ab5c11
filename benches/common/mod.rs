//! Shared by the benchmarks: the generated events, the same bytes for every figure.

#![allow(dead_code)]

/// Events are spread over this many Actions; the first event of each registers it.
pub const ACTIONS: usize = 100_000;

/// The n-th generated event, as a client would send it.
pub fn event_json(n: usize) -> Vec<u8> {
    event_json_over(n, ACTIONS)
}

/// The n-th event over `actions` Actions: registrations first, then practice stages.
pub fn event_json_over(n: usize, actions: usize) -> Vec<u8> {
    let actions_count = actions;
    let action = format!("MIEUX-TH-{:06}", n % actions_count);
    let id = uuid::Uuid::from_u128(0x1000_0000_0000_0000_0000_0000_0000 + n as u128);
    let (event_type, outcome, data) = if n < actions_count {
        ("action.registered", String::new(), r#"{"title":"Study visit on counter-trafficking cooperation","modality":"study_visit","partner_institutions":["Ministry"]}"#.to_owned())
    } else {
        let stages = [
            "practice.awareness",
            "practice.applied",
            "practice.routine",
            "practice.diffused",
        ];
        (
            stages[(n / actions_count) % stages.len()],
            format!(r#","outcome_id":"o-{}""#, (n / actions_count) % 3),
            r#"{"title":"Officials apply social-marketing lessons","note":"reported by the field office after the follow-up meeting"}"#.to_owned(),
        )
    };
    format!(
        r#"{{"event_id":"{id}","type":"{event_type}","action_id":"{action}","country":"TH"{outcome},"occurred_on":"20{:02}-{:02}-{:02}","reported_by":"fo-bangkok","data":{data}}}"#,
        15 + (n / actions_count) % 10,
        1 + n % 12,
        1 + n % 28
    )
    .into_bytes()
}

pub fn rate(count: usize, seconds: f64) -> f64 {
    count as f64 / seconds
}

/// The `q` quantile of sorted samples.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// CPU seconds each thread of this process has used, by thread name, beside `wall` seconds:
/// shows which thread bounds a figure.
pub fn print_thread_cpu(wall: f64) {
    let line: Vec<String> = thread_cpu("self")
        .iter()
        .filter(|(_, cpu)| **cpu > 0.05)
        .map(|(name, cpu)| format!("{name} {cpu:.1}s"))
        .collect();
    println!(
        "  cpu by thread since start (wall {wall:.1}s): {}",
        line.join(", ")
    );
}

/// CPU seconds (user + system) each thread of process `pid` ("self" for this one) has used so
/// far, summed by thread name.
pub fn thread_cpu(pid: &str) -> std::collections::BTreeMap<String, f64> {
    let mut by_name: std::collections::BTreeMap<String, f64> = Default::default();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(name) = std::fs::read_to_string(task.path().join("comm")) {
            *by_name.entry(name.trim().to_owned()).or_default() +=
                stat_cpu(&task.path().join("stat"));
        }
    }
    by_name
}

/// CPU seconds (user + system) process `pid` ("self" for this one) has used so far, its
/// finished threads included.
pub fn process_cpu(pid: &str) -> f64 {
    stat_cpu(std::path::Path::new(&format!("/proc/{pid}/stat")))
}

/// The user + system CPU seconds of a `/proc` `stat` file (fields 14 and 15, in ticks).
fn stat_cpu(path: &std::path::Path) -> f64 {
    let ticks = 100.0; // USER_HZ
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<f64> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / ticks
}

/// The machine's idle CPU seconds so far, over all cores (`/proc/stat`: idle + iowait).
pub fn idle_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    (fields.get(3).unwrap_or(&0.0) + fields.get(4).unwrap_or(&0.0)) / 100.0
}

/// The resident memory of process `pid` ("self" for this one), in KiB.
pub fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
