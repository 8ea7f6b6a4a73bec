"""Resumable video uploads on the tus 1.0.0 protocol (core, creation, termination, checksum, expiration)
for the 推荐单位 portal, plus the portal's video part and its no-JavaScript fallback."""
