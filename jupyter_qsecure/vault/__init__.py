"""OpenBao/Vault integration: layout and policies, credential broker, masking, embedded server."""
