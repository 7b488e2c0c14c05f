//! A batch of many creates: its new rows go by `COPY` while the kernel is still making the
//! rest, so the server inserts the first rows as the later ones are admitted and encoded.

#[allow(
    clippy::wildcard_imports,
    reason = "one module split by role: its parts share the parent's imports"
)]
use super::*;

/// A batch of creates only carrying at least this many jobs streams them. A smaller one writes
/// them with the rest of the batch, which spares it the round trip that starts the `COPY`.
const STREAMED: usize = 64;

/// Whether `cmds` are creates only, enough of them to stream (see [`Batch::create_streamed`]).
pub(crate) fn streams(cmds: &[Cmd]) -> bool {
    cmds.iter()
        .map(|c| c.op.submits().map(<[NewJob]>::len))
        .sum::<Option<usize>>()
        .is_some_and(|jobs| jobs >= STREAMED)
}

/// Whether a batch of creates that streams starts its `COPY` in the round trip of its preload
/// (see [`Batch::begin_creates`]): when that preload is a single round trip, which it is
/// unless the batch runs carefully or a job has an idempotency key or a cap on active jobs
/// (each of which reads more once the first answers are in).
pub(crate) fn copies_early(cmds: &[Cmd], careful: bool) -> bool {
    !careful
        && streams(cmds)
        && cmds
            .iter()
            .flat_map(|c| c.op.submits().unwrap_or_default())
            .all(|new| new.idempotency_key.is_none() && new.max_active.is_none())
}

impl Batch<'_> {
    /// The first round trip of a batch that creates jobs: `begin` (the `BEGIN`), the preload,
    /// and the batch's commit marker (`token`). A batch that [copies early](copies_early) also
    /// starts its `COPY` there, and answers it: the server then waits for the rows as soon as
    /// the preload's answers are read, where otherwise it would wait one more round trip.
    ///
    /// The connection runs its requests in the order they are queued, and a request is queued
    /// when its future is first polled (`biased`: in the order written), provided its
    /// statement is prepared. So the `COPY` starts early only on a connection whose opening
    /// statements, those of this round trip among them, are all prepared (`opened`), and it
    /// is polled last, as it must come after every statement.
    pub(crate) async fn begin_creates(
        &mut self,
        tx: &Db<'_>,
        cmds: &[Cmd],
        careful: bool,
        begin: impl std::future::Future<Output = Result<(), BatchError>>,
        token: uuid::Uuid,
    ) -> Result<Option<CopyIn<'static>>, BatchError> {
        let s = self.s;
        let mark = async {
            tx.execute(&mark_commit_now(s), &[&token]).await?;
            Ok(())
        };
        if !copies_early(cmds, careful) || !tx.stmts.opened() {
            tokio::try_join!(biased; begin, self.preload(tx, cmds, careful), mark)?;
            return Ok(None);
        }
        let copy_sql = copy_new_jobs(s);
        let ((), (), (), copy) = tokio::try_join!(
            biased;
            begin,
            self.preload(tx, cmds, careful),
            mark,
            tx.copy_in(&copy_sql, &NEW_JOB_TYPES),
        )?;
        Ok(Some(copy))
    }

    /// One submit's answer.
    pub(crate) fn submit_one(&mut self, new: &NewJob, now: Timestamp) -> Result<Submitted> {
        match self.submit(new, now)? {
            Out::Submitted(s) => Ok(s),
            other => Err(Error::store(
                StoreErrorKind::Other,
                format!("a submit answered {other:?}"),
            )),
        }
    }

    /// Applies `cmds`, creates only (see [`streams`]), writing each new job as soon as the
    /// kernel made it: the rows go to one `COPY` (`early`, when [`Self::begin_creates`]
    /// started it) while the next jobs are made, where otherwise every job is made before the
    /// first row is sent. Answers the commands' answers and the
    /// `COPY`, all rows sent, for the caller to finish: what else the creates imply (outbox
    /// rows, charges) is written by the batch's last flush, which the connection sends after
    /// the `COPY`'s end, in the same round trip.
    ///
    /// A created job's row is written once: nothing else in a batch of creates changes it (a
    /// repeated idempotency key answers with the job as it was made).
    pub(crate) async fn create_streamed(
        &mut self,
        tx: &Db<'_>,
        cmds: &[Cmd],
        early: Option<CopyIn<'static>>,
    ) -> Result<(Vec<Result<Out>>, CopyIn<'static>), BatchError> {
        let mut copy = match early {
            Some(copy) => copy,
            None => tx.copy_in(&copy_new_jobs(self.s), &NEW_JOB_TYPES).await?,
        };
        let mut outs = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let out = match &cmd.op {
                Op::Submit(new) => {
                    let answer = self.submit_one(new, cmd.now);
                    self.stream(&mut copy, &answer).await?;
                    answer.map(Out::Submitted)
                }
                Op::SubmitMany(jobs) => {
                    let mut answers = Vec::with_capacity(jobs.len());
                    for new in jobs {
                        let answer = self.submit_one(new, cmd.now);
                        self.stream(&mut copy, &answer).await?;
                        answers.push(answer);
                    }
                    Ok(Out::Submits(answers))
                }
                other => {
                    return Err(BatchError::Fail(Error::store(
                        StoreErrorKind::Other,
                        format!("a batch of creates holds {other:?}"),
                    )));
                }
            };
            outs.push(out);
        }
        Ok((outs, copy))
    }

    /// Writes the row of the job `answer` created, if it created one.
    async fn stream(
        &mut self,
        copy: &mut CopyIn<'_>,
        answer: &Result<Submitted>,
    ) -> Result<(), BatchError> {
        let Ok(Submitted { job, created: true }) = answer else {
            return Ok(());
        };
        if let Some((_, mark)) = self.cache.get_mut(&job.id) {
            *mark = Mark::Clean;
        }
        note_written(&mut self.ready, &mut self.expiring, job, self.now);
        self.listed
            .push((job.tenant.clone(), job.group.clone(), job.id.0));
        let log = self.logs.remove(&job.id).unwrap_or_default();
        copy.row(&NewRow::of(job, log).values()).await
    }
}
