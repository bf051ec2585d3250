//! Work over a list on a few threads: listing layers and reading wheel metadata are mostly
//! waiting on the filesystem (more so a network one), so a few threads overlap the waits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// Threads for `len` items: the machine's parallelism, at least 2 (the work waits more than
/// it computes), at most 8.
fn threads_for(len: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
        .min(len.max(1))
}

/// Runs `produce` on every item on a few threads, and `consume` on this thread on each
/// result in the items' order as soon as it and those before it are ready, so that the
/// caller works on early results while later ones are produced. Stops at the first error
/// `consume` returns.
pub fn for_each_in_order<T: Sync, R: Send, E>(
    items: &[T],
    produce: impl Fn(&T) -> R + Sync,
    consume: impl FnMut(usize, R) -> Result<(), E>,
) -> Result<(), E> {
    on_threads(threads_for(items.len()), items, produce, consume)
}

/// Runs `f` on every item on up to 16 threads, for work that only waits on a device (such
/// as fsyncs, whose cache flushes the device merges for callers that wait together); the
/// first error stops it.
pub fn try_each_waiting<T: Sync, E: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    on_threads(items.len().clamp(1, 16), items, f, |_, r| r)
}

/// [`for_each_in_order`] on `threads` threads.
fn on_threads<T: Sync, R: Send, E>(
    threads: usize,
    items: &[T],
    produce: impl Fn(&T) -> R + Sync,
    mut consume: impl FnMut(usize, R) -> Result<(), E>,
) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, produce) = (&next, &stop, &produce);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if tx.send((i, produce(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut waiting = BTreeMap::new();
        let mut want = 0;
        for (i, r) in rx.iter() {
            waiting.insert(i, r);
            while let Some(r) = waiting.remove(&want) {
                if let Err(e) = consume(want, r) {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                want += 1;
            }
        }
        Ok(())
    })
}

/// `f` over `items` on a few threads, results in order.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let mut out = Vec::with_capacity(items.len());
    let all: Result<(), std::convert::Infallible> = for_each_in_order(items, f, |_, r| {
        out.push(r);
        Ok(())
    });
    let Ok(()) = all;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_order() {
        let items: Vec<u64> = (0..200).collect();
        // later items finish first
        let out = map(&items, |&i| {
            std::thread::sleep(std::time::Duration::from_micros(200 - i));
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn consume_errors_stop_the_work() {
        let items: Vec<u32> = (0..1000).collect();
        let produced = AtomicUsize::new(0);
        let mut seen = Vec::new();
        let r = for_each_in_order(
            &items,
            |&i| {
                produced.fetch_add(1, Ordering::Relaxed);
                i
            },
            |i, v| {
                seen.push(v);
                if i == 3 {
                    Err("stop")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(r, Err("stop"));
        assert_eq!(seen, vec![0, 1, 2, 3]);
    }
}
