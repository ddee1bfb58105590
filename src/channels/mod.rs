//! Each messaging provider's wire format, signature check, send call and error
//! classification. Nothing here touches the store or the LLM.

pub mod email;
pub mod whatsapp;
