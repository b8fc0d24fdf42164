// Imported first by the local run: the handlers' JSON logs and metrics are for CloudWatch, and would
// bury the run's own report. ECR_MIRROR_VERBOSE=1 shows them.
if (!process.env.ECR_MIRROR_VERBOSE) {
  process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';
  process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
}
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
