"""Loading a version: the load pool, `tf.saved_model.load`, warmup, signature contracts."""
