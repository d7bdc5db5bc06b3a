//! `berth schema`: the JSON Schema of services.yaml.

use super::CommandError;

pub fn run() -> Result<u8, CommandError> {
    print!("{}", crate::core::spec::json_schema());
    Ok(0)
}
