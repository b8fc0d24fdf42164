/** Exactly what a pull needs, and `ecr:DescribeImages`, which the manual path uses to check a tag. */
export const PULL_ACTIONS_FOR_GRANT = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:BatchGetImage',
  'ecr:DescribeImages',
  'ecr:GetDownloadUrlForLayer',
] as const;

/** `--push`: what a push needs on top of the pull actions. */
export const PUSH_ACTIONS_FOR_GRANT = [
  'ecr:CompleteLayerUpload',
  'ecr:InitiateLayerUpload',
  'ecr:PutImage',
  'ecr:UploadLayerPart',
] as const;
