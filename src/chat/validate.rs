//! The limits on what a request may carry, each refused with a message naming the field.

use super::ChatError;

pub const MAX_USERNAME: usize = 32;
pub const MAX_PASSWORD: usize = 128;
pub const MAX_TEXT: usize = 4096;
pub const MAX_PAGE: u32 = 1000;

pub fn username(field: &str, name: &str) -> Result<(), ChatError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() || name.chars().count() > MAX_USERNAME || !ok_chars {
        return Err(ChatError::InvalidArgument(format!(
            "{field}: a username is 1 to {MAX_USERNAME} letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(())
}

pub fn password(password: &str) -> Result<(), ChatError> {
    if password.is_empty() || password.len() > MAX_PASSWORD {
        return Err(ChatError::InvalidArgument(format!(
            "password: must be 1 to {MAX_PASSWORD} bytes"
        )));
    }
    Ok(())
}

pub fn text(text: &str) -> Result<(), ChatError> {
    if text.is_empty() || text.len() > MAX_TEXT {
        return Err(ChatError::InvalidArgument(format!(
            "text: must be 1 to {MAX_TEXT} bytes of UTF-8, got {}",
            text.len()
        )));
    }
    Ok(())
}

pub fn page(limit: u32) -> Result<(), ChatError> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(ChatError::InvalidArgument(format!(
            "limit: a page holds 1 to {MAX_PAGE} items, got {limit}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_field() {
        assert!(username("user", "alice.b-2_x").is_ok());
        for bad in ["", "has space", "ünïcode", &"a".repeat(33)] {
            let err = username("to", bad).unwrap_err();
            assert!(err.to_string().starts_with("to: "), "{err}");
        }
        assert!(password(&"p".repeat(128)).is_ok());
        assert!(password(&"p".repeat(129)).is_err());
        assert!(text(&"t".repeat(4096)).is_ok());
        assert!(text("").unwrap_err().to_string().starts_with("text: "));
        assert!(page(1000).is_ok());
        assert!(page(0).is_err() && page(1001).is_err());
    }
}
