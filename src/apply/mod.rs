//! stub
use crate::{Plan, Scenario, Result};
#[derive(Default)] pub struct UpOptions;
pub struct RunningLab;
pub async fn up(_s: Scenario, _p: Plan, _o: UpOptions) -> Result<RunningLab> { todo!() }
