/**
 * The claim check's bucket in a team stack (docs/large-values.md): encrypted, private, SSL only,
 * its contents expiring with the runs, named to every function, reached only under its prefix.
 */
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENVIRONMENT_VARIABLES } from '../../functions/lambda-environment';
import { functionOf, resourcesOf, synthTeam, type Synthesized } from './support';

let research: Synthesized;
let platform: Synthesized;
let noTtl: Synthesized;

beforeAll(() => {
  research = synthTeam('research', { bundle: false });
  platform = synthTeam('platform', { bundle: false });
  noTtl = synthTeam('research', { bundle: false, config: { runTtlDays: undefined } });
});

const bucketId = (template: Template) => {
  const buckets = resourcesOf(template, 'AWS::S3::Bucket');
  expect(buckets).toHaveLength(1);
  return buckets[0][0];
};

describe('the blob bucket', () => {
  it('is private and encrypted, SSL only, and kept on teardown', () => {
    const { template } = research;
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
    });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucketId(template) },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Principal: { AWS: '*' }, Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it("expires its contents with the runs (the team's runTtlDays), and never without a TTL", () => {
    research.template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: [Match.objectLike({ Prefix: 'blobs/', Status: 'Enabled', ExpirationInDays: research.config.runTtlDays, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } })],
      },
    });
    noTtl.template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: [Match.objectLike({ Prefix: 'blobs/', ExpirationInDays: Match.absent() })] },
    });
  });

  it("is encrypted with the table's key when the team has one", () => {
    const [[keyId]] = resourcesOf(platform.template, 'AWS::KMS::Key');
    platform.template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [keyId, 'Arn'] } } },
        ],
      },
    });
  });

  it('is named to every function (BLOB_BUCKET), and no role may list, delete or reach the bucket itself', () => {
    const { template } = research;
    const bucket = bucketId(template);
    for (const name of ['api', 'trigger', 'step-worker', 'record-child-failure', 'aggregate', 'dlq-handler'] as const) {
      expect(functionOf(template, name).props.Environment.Variables[ENVIRONMENT_VARIABLES.blobBucket], name).toEqual({ Ref: bucket });
    }
    const s3Actions = resourcesOf(template, 'AWS::IAM::Policy').flatMap(([, p]) =>
      (p.Properties.PolicyDocument.Statement as { Action: string | string[] }[]).flatMap((s) => [s.Action].flat()).filter((a) => a.startsWith('s3:')),
    );
    expect([...new Set(s3Actions)].sort()).toEqual(['s3:GetObject', 's3:PutObject']);
  });
});
