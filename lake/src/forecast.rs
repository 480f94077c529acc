//! The forecast's profiles in the lake (docs/contract.md §4.4, §6): the table `forecast_profile`,
//! rewritten as a whole by each training, so every reader — the stream processor's
//! `lot_full_predicted`, each serving replica — sees one model version.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Date32Builder, Float64Builder, Int32Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Float64Type, Int32Type, TimestampMicrosecondType};
use deltalake::protocol::SaveMode;
use fjord_core::forecast::{LotProfile, Profiles, SLOTS_PER_DAY, SLOTS_PER_WEEK};
use fjord_core::time::epoch_day;

use crate::error::{Error, Result};
use crate::tables::{Lake, Table};

/// `profiles` as rows of `forecast_profile`.
pub fn profile_batch(profiles: &Profiles) -> RecordBatch {
    let n = profiles.lots.len() * SLOTS_PER_WEEK;
    let mut lot = StringBuilder::with_capacity(n, n * 8);
    let mut slot = Int32Builder::with_capacity(n);
    let mut weekday = Int32Builder::with_capacity(n);
    let mut minute = Int32Builder::with_capacity(n);
    let mut expected = Float64Builder::with_capacity(n);
    let mut lower = Float64Builder::with_capacity(n);
    let mut upper = Float64Builder::with_capacity(n);
    let mut weeks = Int32Builder::with_capacity(n);
    let mut persistence = Float64Builder::with_capacity(n);
    let mut capacity = Int32Builder::with_capacity(n);
    let mut version = StringBuilder::with_capacity(n, n * 28);
    let mut trained = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut date = Date32Builder::with_capacity(n);
    let day = epoch_day(profiles.trained_through);
    for p in profiles.lots.values() {
        for s in 0..SLOTS_PER_WEEK {
            let s32 = i32::try_from(s).unwrap_or(0);
            lot.append_value(&p.lot_id);
            slot.append_value(s32);
            weekday.append_value(s32 / SLOTS_PER_DAY as i32);
            minute.append_value((s32 % SLOTS_PER_DAY as i32) * 10);
            expected.append_value(p.expected[s]);
            lower.append_value(p.lower[s]);
            upper.append_value(p.upper[s]);
            weeks.append_value(i32::from(p.weeks[s]));
            persistence.append_value(p.persistence);
            capacity.append_value(i32::try_from(p.capacity).unwrap_or(i32::MAX));
            version.append_value(&profiles.model_version);
            trained.append_value(profiles.trained_through.saturating_mul(1000));
            date.append_value(day);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(lot.finish()),
        Arc::new(slot.finish()),
        Arc::new(weekday.finish()),
        Arc::new(minute.finish()),
        Arc::new(expected.finish()),
        Arc::new(lower.finish()),
        Arc::new(upper.finish()),
        Arc::new(weeks.finish()),
        Arc::new(persistence.finish()),
        Arc::new(capacity.finish()),
        Arc::new(version.finish()),
        Arc::new(trained.finish()),
        Arc::new(date.finish()),
    ];
    RecordBatch::try_new(fjord_core::schema::forecast_profile(), columns)
        .unwrap_or_else(|e| unreachable!("the builders follow the schema: {e}"))
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::Config(format!("forecast_profile has no column {name}")))
}

fn cast(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    arrow::compute::cast(column(batch, name)?, to)
        .map_err(|e| Error::Config(format!("forecast_profile.{name}: {e}")))
}

/// Profiles from rows of `forecast_profile` (any order). A lot with slots missing, or rows of
/// more than one model version, is an error: the table is rewritten as a whole.
pub fn profiles_from(batches: &[RecordBatch]) -> Result<Option<Profiles>> {
    let mut lots: BTreeMap<String, LotProfile> = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut version: Option<(String, i64)> = None;
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        let lot = cast(b, "lot_id", &DataType::Utf8)?;
        let lot = lot.as_string::<i32>();
        let version_col = cast(b, "model_version", &DataType::Utf8)?;
        let version_col = version_col.as_string::<i32>();
        let slot = cast(b, "slot", &DataType::Int32)?;
        let slot = slot.as_primitive::<Int32Type>();
        let weeks = cast(b, "weeks", &DataType::Int32)?;
        let weeks = weeks.as_primitive::<Int32Type>();
        let capacity = cast(b, "capacity", &DataType::Int32)?;
        let capacity = capacity.as_primitive::<Int32Type>();
        let f = |name| cast(b, name, &DataType::Float64);
        let (expected, lower, upper, persistence) =
            (f("expected")?, f("lower")?, f("upper")?, f("persistence")?);
        let (expected, lower, upper, persistence) = (
            expected.as_primitive::<Float64Type>(),
            lower.as_primitive::<Float64Type>(),
            upper.as_primitive::<Float64Type>(),
            persistence.as_primitive::<Float64Type>(),
        );
        let trained = cast(b, "trained_through", &fjord_core::schema::timestamp_type())?;
        let trained = trained.as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let v = version_col.value(i);
            match &version {
                None => version = Some((v.to_owned(), trained.value(i) / 1000)),
                Some((have, _)) if have != v => {
                    return Err(Error::Config(format!(
                        "forecast_profile holds two model versions ({have} and {v})"
                    )));
                }
                Some(_) => {}
            }
            let s = usize::try_from(slot.value(i))
                .ok()
                .filter(|s| *s < SLOTS_PER_WEEK)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "forecast_profile: slot {} out of range",
                        slot.value(i)
                    ))
                })?;
            let id = lot.value(i);
            let p = lots.entry(id.to_owned()).or_insert_with(|| LotProfile {
                lot_id: id.to_owned(),
                capacity: 0,
                expected: vec![f64::NAN; SLOTS_PER_WEEK],
                lower: vec![0.0; SLOTS_PER_WEEK],
                upper: vec![0.0; SLOTS_PER_WEEK],
                weeks: vec![0; SLOTS_PER_WEEK],
                persistence: 0.0,
            });
            p.capacity = u32::try_from(capacity.value(i)).unwrap_or(0);
            p.expected[s] = expected.value(i);
            p.lower[s] = lower.value(i);
            p.upper[s] = upper.value(i);
            p.weeks[s] = u16::try_from(weeks.value(i)).unwrap_or(0);
            p.persistence = persistence.value(i);
            *seen.entry(id.to_owned()).or_default() += 1;
        }
    }
    let Some((model_version, trained_through)) = version else {
        return Ok(None);
    };
    for (lot, p) in &lots {
        if seen.get(lot) != Some(&SLOTS_PER_WEEK) || p.expected.iter().any(|e| e.is_nan()) {
            return Err(Error::Config(format!(
                "forecast_profile: lot {lot:?} does not have exactly one row per slot"
            )));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !(0.0..=1.0).contains(&p.persistence)
            || !finite(&p.expected)
            || !finite(&p.lower)
            || !finite(&p.upper)
            || p.lower.iter().any(|l| *l > 0.0)
            || p.upper.iter().any(|u| *u < 0.0)
        {
            return Err(Error::Config(format!(
                "forecast_profile: lot {lot:?} has values out of range (persistence {}, or a band that does not contain 0)",
                p.persistence
            )));
        }
    }
    Ok(Some(Profiles {
        model_version,
        trained_through,
        lots,
    }))
}

/// Replaces the profiles in the lake with `profiles` (one Delta commit), schema included.
pub async fn write_profiles(lake: &Lake, profiles: &Profiles) -> Result<i64> {
    let table = lake.open(Table::ForecastProfile).await?;
    let name = Table::ForecastProfile.name();
    // the schema goes with the model: a newer fjord's profile replaces an older one's whole
    let written = table
        .write(vec![profile_batch(profiles)])
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
        .await
        .map_err(|e| Error::delta(name, e))?;
    Ok(written
        .version()
        .map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX)))
}

/// The profiles in the lake, or `None` before the first training.
pub async fn load_profiles(lake: &Lake) -> Result<Option<Profiles>> {
    Ok(load_if_changed(lake, None).await?.map(|(_, p)| p))
}

/// The profiles and the table version they are at, unless the table is still at version `known`
/// (or was never written): what the readers that look every `forecast.refresh` call, so an
/// unchanged table costs one look at its log, not a scan.
pub async fn load_if_changed(lake: &Lake, known: Option<u64>) -> Result<Option<(u64, Profiles)>> {
    let name = Table::ForecastProfile.name();
    let Some(table) = lake.open_existing(Table::ForecastProfile).await? else {
        return Ok(None);
    };
    let Some(version) = table.version() else {
        return Ok(None);
    };
    if known == Some(version) {
        return Ok(None);
    }
    let (_, stream) = table
        .scan_table()
        .await
        .map_err(|e| Error::delta(name, e))?;
    let batches = deltalake::datafusion::physical_plan::common::collect(stream)
        .await
        .map_err(|e| Error::delta(name, e.into()))?;
    Ok(profiles_from(&batches)?.map(|p| (version, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> Profiles {
        let lot = |id: &str, base: f64| LotProfile {
            lot_id: id.into(),
            capacity: 40,
            expected: (0..SLOTS_PER_WEEK).map(|s| base + s as f64 / 1e4).collect(),
            lower: vec![-0.1; SLOTS_PER_WEEK],
            upper: vec![0.12; SLOTS_PER_WEEK],
            weeks: vec![3; SLOTS_PER_WEEK],
            persistence: 0.93,
        };
        Profiles {
            model_version: Profiles::version_of(1_795_000_000_000),
            trained_through: 1_795_000_000_000,
            lots: [("A".into(), lot("A", 0.2)), ("B".into(), lot("B", 0.5))].into(),
        }
    }

    #[test]
    fn profiles_survive_their_rows_in_any_order() {
        let p = profiles();
        let batch = profile_batch(&p);
        assert_eq!(batch.num_rows(), 2 * SLOTS_PER_WEEK);
        // reversed, in two batches
        let indices: arrow::array::UInt32Array = (0..batch.num_rows() as u32)
            .rev()
            .collect::<Vec<_>>()
            .into();
        let reversed = arrow::compute::take_record_batch(&batch, &indices).unwrap();
        let (a, b) = (
            reversed.slice(0, 100),
            reversed.slice(100, reversed.num_rows() - 100),
        );
        assert_eq!(profiles_from(&[a, b]).unwrap(), Some(p));
        assert_eq!(profiles_from(&[]).unwrap(), None);
        // a lot with a slot missing is refused
        let short = batch.slice(1, batch.num_rows() - 1);
        assert!(profiles_from(&[short]).is_err());
    }

    #[tokio::test]
    async fn the_lake_keeps_one_version() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let lake = Lake::new(url.as_str(), &BTreeMap::new()).unwrap();
        assert_eq!(load_profiles(&lake).await.unwrap(), None);
        assert_eq!(load_if_changed(&lake, None).await.unwrap(), None);
        let mut p = profiles();
        write_profiles(&lake, &p).await.unwrap();
        assert_eq!(load_profiles(&lake).await.unwrap(), Some(p.clone()));
        // a reader that has this version is told nothing changed
        let (version, loaded) = load_if_changed(&lake, None).await.unwrap().unwrap();
        assert_eq!(loaded, p);
        assert_eq!(load_if_changed(&lake, Some(version)).await.unwrap(), None);
        p.trained_through += 600_000;
        p.model_version = Profiles::version_of(p.trained_through);
        p.lots.remove("B");
        write_profiles(&lake, &p).await.unwrap();
        let (newer, loaded) = load_if_changed(&lake, Some(version))
            .await
            .unwrap()
            .unwrap();
        assert!(newer > version);
        assert_eq!(loaded, p);
    }
}
