//! Statistics schedules in SQLite: the EventBridge Scheduler of one machine.

use async_trait::async_trait;
use iot_core::ports::{ScheduleTarget, Scheduler, SchedulerError};
use iot_core::stats::Schedule;
use rusqlite::params;

use super::Database;

/// Statistics schedules kept in SQLite; the local runner reads them (the EventBridge Scheduler
/// of one machine).
#[derive(Clone)]
pub struct SqliteScheduler {
    db: Database,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoredSchedule {
    pub name: String,
    pub cron: String,
    pub target: ScheduleTarget,
}

impl SqliteScheduler {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn schedules(&self) -> Result<Vec<StoredSchedule>, SchedulerError> {
        self.db
            .run(|c| {
                let mut select =
                    c.prepare("SELECT name, cron, tenant_id, job_id FROM schedules ORDER BY name")?;
                let rows = select.query_map([], |r| {
                    Ok(StoredSchedule {
                        name: r.get(0)?,
                        cron: r.get(1)?,
                        target: ScheduleTarget {
                            tenant_id: r.get(2)?,
                            job_id: r.get(3)?,
                        },
                    })
                })?;
                rows.collect()
            })
            .await
            .map_err(|e| SchedulerError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl Scheduler for SqliteScheduler {
    async fn upsert(
        &self,
        name: &str,
        cron: &str,
        target: &ScheduleTarget,
    ) -> Result<(), SchedulerError> {
        Schedule::parse(cron).map_err(|e| SchedulerError::Invalid(e.to_string()))?;
        let row = (
            name.to_owned(),
            cron.to_owned(),
            target.tenant_id.clone(),
            target.job_id.clone(),
        );
        self.db
            .run(move |c| {
                c.execute(
                    "INSERT INTO schedules (name, cron, tenant_id, job_id) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO UPDATE SET cron = ?2, tenant_id = ?3, job_id = ?4",
                    params![row.0, row.1, row.2, row.3],
                )
                .map(|_| ())
            })
            .await
            .map_err(|e| SchedulerError::Unavailable(e.to_string()))
    }

    async fn delete(&self, name: &str) -> Result<(), SchedulerError> {
        let name = name.to_owned();
        self.db
            .run(move |c| {
                c.execute("DELETE FROM schedules WHERE name = ?1", [name])
                    .map(|_| ())
            })
            .await
            .map_err(|e| SchedulerError::Unavailable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[tokio::test]
    async fn schedules_are_upserted_validated_and_deleted() -> TestResult {
        let scheduler = SqliteScheduler::new(Database::in_memory()?);
        let target = ScheduleTarget {
            tenant_id: "t".into(),
            job_id: "daily".into(),
        };
        scheduler.upsert("t-daily", "0 0 * * *", &target).await?;
        scheduler.upsert("t-daily", "*/5 * * * *", &target).await?;
        assert!(scheduler.upsert("bad", "every day", &target).await.is_err());
        let stored = scheduler.schedules().await?;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].cron, "*/5 * * * *");
        scheduler.delete("t-daily").await?;
        assert!(scheduler.schedules().await?.is_empty());
        Ok(())
    }
}
