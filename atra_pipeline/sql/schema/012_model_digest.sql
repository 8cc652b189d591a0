-- Issue 15: a damaged stored model is refused with an error instead of aborting the process
-- (LightGBM terminates on a malformed model string). The SHA-256 of model_text at registration;
-- NULL for models registered before it was kept.
ALTER TABLE model_registry ADD COLUMN IF NOT EXISTS model_sha256 VARCHAR;
