//! The pipeline that feeds the device: work done on a worker thread (which may fan out to the
//! thread pool) at most a bounded number of items ahead of the thread that uses the results, in
//! order. Training and evaluation both take their batches through it, so decoding, augmentation
//! and normalisation overlap the model's steps, and memory stays bounded by the queue.

use std::sync::mpsc::sync_channel;

/// Calls `make` on each of `jobs` in order on a worker thread, at most `depth` results ahead,
/// and hands the results to `take` in order on this thread. Stops at the first error of either
/// (the worker notices at its next result and ends), and returns it.
pub fn pipelined<J, T, E>(
    jobs: impl IntoIterator<Item = J> + Send,
    depth: usize,
    mut make: impl FnMut(J) -> Result<T, E> + Send,
    mut take: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    T: Send,
    E: Send,
{
    std::thread::scope(|scope| {
        let (sender, receiver) = sync_channel::<Result<T, E>>(depth.max(1));
        scope.spawn(move || {
            for job in jobs {
                let made = make(job);
                let failed = made.is_err();
                if sender.send(made).is_err() || failed {
                    break; // the taker stopped, or this is the last result it needs
                }
            }
        });
        for made in receiver {
            take(made?)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_arrive_in_order_and_errors_stop_both_sides() {
        let mut seen = Vec::new();
        pipelined(0..100, 3, |i| Ok::<_, String>(i * 2), |v| {
            seen.push(v);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, (0..100).map(|i| i * 2).collect::<Vec<_>>());

        let made = std::sync::atomic::AtomicUsize::new(0);
        let err = pipelined(0..100, 2, |i| {
            made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if i == 5 { Err(format!("job {i}")) } else { Ok(i) }
        }, |_| Ok(()));
        assert_eq!(err, Err("job 5".to_string()));
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 6, "no job after the failing one");

        let mut taken = 0;
        let err = pipelined(0..1000, 2, Ok, |i| {
            taken += 1;
            if i == 3 { Err("stop".to_string()) } else { Ok(()) }
        });
        assert_eq!((err, taken), (Err("stop".to_string()), 4));
    }
}
