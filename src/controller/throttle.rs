//! Spaces out repeated reconcile triggers for the same object.
//!
//! kube-runtime's debounce delays a request for as long as triggers keep
//! coming, so a profile whose numbers are being created in bulk would not be
//! reconciled until the creates stop. [`throttle`] instead passes the first
//! trigger of an object at once and folds the ones that follow within the
//! interval into a single trigger at its end.

use std::{collections::HashMap, hash::Hash, time::Duration};

use futures::{Stream, StreamExt, stream};
use tokio::time::{Instant, sleep_until};

struct State<S, T> {
    input: Option<S>,
    /// When each recent key was last passed on.
    passed: HashMap<T, Instant>,
    /// Keys triggered again within the interval, and when they are due.
    due: HashMap<T, Instant>,
}

/// Passes each key of `input` on at most once per `interval`, except that
/// keys still due when `input` ends are passed at once.
pub fn throttle<S, T>(input: S, interval: Duration) -> impl Stream<Item = T>
where
    S: Stream<Item = T> + Unpin,
    T: Clone + Eq + Hash,
{
    let state: State<S, T> = State {
        input: Some(input),
        passed: HashMap::new(),
        due: HashMap::new(),
    };
    stream::unfold(state, move |mut state| async move {
        loop {
            let next_due = state
                .due
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(key, at)| (key.clone(), *at));
            let Some(input) = state.input.as_mut() else {
                // The input ended: hand out what is still due, then end.
                let (key, _) = next_due?;
                state.due.remove(&key);
                return Some((key, state));
            };
            let wake = next_due.as_ref().map(|(_, at)| *at);
            tokio::select! {
                item = input.next() => match item {
                    None => state.input = None,
                    Some(key) => {
                        let now = Instant::now();
                        state.passed.retain(|_, at| now < *at + interval);
                        match state.passed.get(&key) {
                            Some(at) => {
                                let at = *at + interval;
                                state.due.entry(key).or_insert(at);
                            }
                            None => {
                                state.passed.insert(key.clone(), now);
                                return Some((key, state));
                            }
                        }
                    }
                },
                () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                    if let Some((key, _)) = next_due {
                        state.due.remove(&key);
                        state.passed.insert(key.clone(), Instant::now());
                        return Some((key, state));
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn repeats_fold_into_one_trigger() {
        let interval = Duration::from_secs(2);
        let (sender, receiver) = mpsc::unbounded();
        let mut throttled = Box::pin(throttle(receiver, interval));
        let start = Instant::now();

        sender.unbounded_send("a").unwrap();
        assert_eq!(throttled.next().await, Some("a"));
        assert_eq!(start.elapsed(), Duration::ZERO);

        for _ in 0..5 {
            sender.unbounded_send("a").unwrap();
        }
        sender.unbounded_send("b").unwrap();
        assert_eq!(throttled.next().await, Some("b"), "other keys do not wait");
        assert_eq!(throttled.next().await, Some("a"));
        assert_eq!(
            start.elapsed(),
            interval,
            "the repeats pass once, at the end of the interval"
        );

        tokio::time::advance(interval * 3).await;
        sender.unbounded_send("a").unwrap();
        drop(sender);
        assert_eq!(
            throttled.next().await,
            Some("a"),
            "a quiet key passes at once"
        );
        assert_eq!(throttled.next().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn due_trigger_outlives_input() {
        let (sender, receiver) = mpsc::unbounded();
        let mut throttled = Box::pin(throttle(receiver, Duration::from_secs(2)));
        sender.unbounded_send(1).unwrap();
        sender.unbounded_send(1).unwrap();
        drop(sender);
        assert_eq!(throttled.next().await, Some(1));
        assert_eq!(throttled.next().await, Some(1));
        assert_eq!(throttled.next().await, None);
    }
}
