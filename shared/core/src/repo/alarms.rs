//! Alarms: each device's versioned alarm state and the alarm records, by tenant and by device.

use super::{AlarmFilter, Catalog, alarm_sk, alarms_pk, from_item, state_key, to_json};
use crate::alarm::{AlarmRecord, DeviceAlarmState, parse_alarm_id};
use crate::ports::{Condition, Item, Key, Query, StoreError, Write};

impl Catalog {
    /// The device's alarm state, new if none was stored.
    pub async fn alarm_state(&self, uid: &str) -> Result<DeviceAlarmState, StoreError> {
        match self.store.get(&state_key(uid)).await? {
            Some(item) => {
                let version = item.version;
                let mut state: DeviceAlarmState = from_item(item)?;
                state.version = version;
                Ok(state)
            }
            None => Ok(DeviceAlarmState::new(uid)),
        }
    }

    /// Writes the state if nobody else did since it was read; bumps its version.
    pub async fn save_alarm_state(&self, state: &mut DeviceAlarmState) -> Result<(), StoreError> {
        let condition = match state.version {
            0 => Condition::NotExists,
            v => Condition::Version(v),
        };
        let mut item = Item::new(state_key(&state.device_uid), to_json(state)?);
        item.version = state.version + 1;
        self.store.put(item, condition).await?;
        state.version += 1;
        Ok(())
    }

    /// Like [`Self::save_alarm_state`], and writes the alarm records in the same transaction.
    pub async fn save_alarm_state_with(
        &self,
        state: &mut DeviceAlarmState,
        records: &[AlarmRecord],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return self.save_alarm_state(state).await;
        }
        let condition = match state.version {
            0 => Condition::NotExists,
            v => Condition::Version(v),
        };
        let mut item = Item::new(state_key(&state.device_uid), to_json(state)?);
        item.version = state.version + 1;
        let mut writes = vec![Write::Put { item, condition }];
        for record in records {
            writes.push(Write::Put {
                item: alarm_item(record)?,
                condition: Condition::Always,
            });
        }
        self.store.transact(writes).await?;
        state.version += 1;
        Ok(())
    }

    pub async fn alarm(
        &self,
        tenant: &str,
        alarm_id: &str,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        let Some((_, _, raised_at)) = parse_alarm_id(alarm_id) else {
            return Ok(None);
        };
        self.get(Key::new(alarms_pk(tenant), alarm_sk(raised_at, alarm_id)))
            .await
    }

    /// Every alarm the filter selects, newest first (up to `filter.limit`).
    pub async fn alarms(
        &self,
        tenant: &str,
        filter: &AlarmFilter,
    ) -> Result<Vec<AlarmRecord>, StoreError> {
        let (alarms, _) = self
            .alarms_page(tenant, filter, None, usize::MAX, |_| true)
            .await?;
        Ok(alarms)
    }

    /// One page of the alarms the filter selects and `visible` keeps, newest first, at most
    /// `filter.limit` (else `page_size`) of them; and the cursor after the last one, if the
    /// store may have more. The cursor is the store's, so a page costs reads of about its size
    /// however deep it is.
    pub async fn alarms_page(
        &self,
        tenant: &str,
        filter: &AlarmFilter,
        cursor: Option<String>,
        page_size: usize,
        visible: impl Fn(&AlarmRecord) -> bool,
    ) -> Result<(Vec<AlarmRecord>, Option<String>), StoreError> {
        let mut query = match &filter.device_uid {
            Some(uid) => Query::index(format!("DEVICE#{uid}#ALARMS")),
            None => Query::partition(alarms_pk(tenant)),
        };
        query.descending = true;
        query.cursor = cursor;
        let limit = filter.limit.unwrap_or(page_size);
        self.page_where(query, limit, |record: &AlarmRecord| {
            record.tenant_id == tenant
                && (!filter.open_only || record.status.is_open())
                && filter.status.is_none_or(|s| s == record.status)
                && visible(record)
        })
        .await
    }
}

fn alarm_item(record: &AlarmRecord) -> Result<Item, StoreError> {
    let sk = alarm_sk(record.raised_at, &record.alarm_id);
    let mut item = Item::new(
        Key::new(alarms_pk(&record.tenant_id), sk.clone()),
        to_json(record)?,
    );
    item.index = Some(Key::new(format!("DEVICE#{}#ALARMS", record.device_uid), sk));
    Ok(item)
}
