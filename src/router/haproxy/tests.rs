//! Tests against a real HAProxy (see ../../../acceptance-tests for the journeys).
