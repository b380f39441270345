using System.Security.Cryptography;
using Chain.Harness;

namespace Chain.Gateway.Tests;

/// <summary>
/// S3 multipart uploads through the gateway with unmodified tools: aws CLI (default 8 MiB parts), boto3 (parallel,
/// out-of-order parts, list, abort, EntityTooSmall), s3cmd (15 MiB parts), rclone (a small upload cutoff).
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class MultipartHttpTests(GatewayFixture fixture)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(180);

    private static async Task<string> RunOkAsync(string program, IEnumerable<string> args)
    {
        var (code, stdout, stderr, line) = await Shell.RunUncheckedAsync(program, args, timeout: ToolTimeout);
        Assert.True(code == 0, $"{line} exited {code}: {stdout}\n{stderr}");
        return stdout;
    }

    [Fact]
    public async Task AwsCli_50MiB_CopyUpAndDown_IsMultipart_With7Parts()
    {
        string dir = fixture.NewWorkDir("aws-mpu");
        // Default transfer settings: multipart above 8 MiB, 8 MiB parts.
        var aws = await fixture.AwsCommandAsync(dir);
        Task<string> Aws(params string[] args) => RunOkAsync("env", aws.Concat(args));

        byte[] data = GatewayFixture.Content(21, 50 * 1024 * 1024);
        string up = Path.Combine(dir, "up");
        await File.WriteAllBytesAsync(up, data);
        await Aws("s3", "mb", "s3://aws-mpu");
        await Aws("s3", "cp", up, "s3://aws-mpu/big");
        string down = Path.Combine(dir, "down");
        await Aws("s3", "cp", "s3://aws-mpu/big", down);
        Assert.True(SameBytes(data, await File.ReadAllBytesAsync(down)), "downloaded bytes differ");

        string head = await Aws("s3api", "head-object", "--bucket", "aws-mpu", "--key", "big");
        Assert.Contains($"-7\\\"\"", head); // "ETag": "\"<md5 of md5s>-7\""
        Assert.Contains(ExpectedMultipartETag(data, 8 * 1024 * 1024), head);
        Assert.Contains("\"ContentLength\": 52428800", head);
        Assert.Equal("", (await Aws("s3api", "list-multipart-uploads", "--bucket", "aws-mpu")).Trim());
    }

    private static bool SameBytes(byte[] a, byte[] b) => a.AsSpan().SequenceEqual(b);

    /// <summary>S3's multipart ETag: hex MD5 of the parts' binary MD5s, "-", the part count.</summary>
    private static string ExpectedMultipartETag(byte[] data, int partBytes)
    {
        var md5s = new List<byte>();
        int parts = 0;
        for (int offset = 0; offset < data.Length; offset += partBytes, parts++)
            md5s.AddRange(MD5.HashData(data.AsSpan(offset, Math.Min(partBytes, data.Length - offset))));
        return Convert.ToHexStringLower(MD5.HashData(md5s.ToArray())) + "-" + parts;
    }

    [Fact]
    public async Task Boto3_ParallelOutOfOrderParts_ListParts_Complete_Abort_EntityTooSmall_Errors()
    {
        string dir = fixture.NewWorkDir("boto3-mpu");
        string script = Path.Combine(dir, "mpu.py");
        await File.WriteAllTextAsync(script, Boto3Script);
        string stdout = await RunOkAsync("/usr/bin/python3", [script, fixture.EndpointText, GatewayFixture.AccessKey, GatewayFixture.Secret]);
        Assert.EndsWith("OK", stdout.Trim());
    }

    [Fact]
    public async Task S3cmd_20MiB_With15MiBParts_RoundTrip()
    {
        string dir = fixture.NewWorkDir("s3cmd-mpu");
        string config = await fixture.WriteS3cmdConfigAsync(dir);
        Task<string> S3cmd(params string[] args) => RunOkAsync("/usr/bin/s3cmd", new[] { "-c", config, "--no-progress" }.Concat(args));
        byte[] data = GatewayFixture.Content(22, 20 * 1024 * 1024);
        await File.WriteAllBytesAsync(Path.Combine(dir, "up"), data);
        await S3cmd("mb", "s3://s3cmd-mpu");
        await S3cmd("put", "--multipart-chunk-size-mb=15", Path.Combine(dir, "up"), "s3://s3cmd-mpu/big");
        await S3cmd("get", "--force", "s3://s3cmd-mpu/big", Path.Combine(dir, "down"));
        Assert.True(SameBytes(data, await File.ReadAllBytesAsync(Path.Combine(dir, "down"))), "downloaded bytes differ");
        var head = await fixture.SendSignedAsync(HttpMethod.Head, "/s3cmd-mpu/big");
        Assert.Equal("\"" + ExpectedMultipartETag(data, 15 * 1024 * 1024) + "\"", head.Headers.ETag!.Tag); // 2 parts: a multipart upload
    }

    [Fact]
    public async Task Rclone_AboveUploadCutoff_RoundTrip()
    {
        string dir = fixture.NewWorkDir("rclone-mpu");
        string config = await fixture.WriteRcloneConfigAsync(dir);
        Task<string> Rclone(params string[] args) =>
            RunOkAsync("env", new[] { "-u", "AWS_CA_BUNDLE", "/usr/bin/rclone", "--config", config }.Concat(args));
        string source = Path.Combine(dir, "src");
        Directory.CreateDirectory(source);
        byte[] data = GatewayFixture.Content(23, 12 * 1024 * 1024);
        await File.WriteAllBytesAsync(Path.Combine(source, "big.bin"), data);
        await Rclone("copy", "--s3-upload-cutoff", "1M", "--s3-chunk-size", "5M", source, "chain:rclone-mpu/x");
        await Rclone("check", source, "chain:rclone-mpu/x");
        await Rclone("copy", "chain:rclone-mpu/x", Path.Combine(dir, "down"));
        Assert.True(SameBytes(data, await File.ReadAllBytesAsync(Path.Combine(dir, "down", "big.bin"))), "downloaded bytes differ");
        // rclone keeps no MD5 of a multipart object in its ETag; 3 parts of 5 MiB make "-3".
        var head = await fixture.SendSignedAsync(HttpMethod.Head, "/rclone-mpu/x/big.bin");
        Assert.EndsWith("-3\"", head.Headers.ETag!.Tag);
    }

    [Fact]
    public async Task Complete_WithMalformedXml_Is400MalformedXML_AndTheUploadStays()
    {
        Assert.Equal(200, (int)(await fixture.SendSignedAsync(HttpMethod.Put, "/raw-mpu")).StatusCode);
        var initiated = await fixture.SendSignedAsync(HttpMethod.Post, "/raw-mpu/obj?uploads");
        Assert.Equal(200, (int)initiated.StatusCode);
        string uploadId = System.Xml.Linq.XElement.Parse(await initiated.Content.ReadAsStringAsync())
            .Elements().Single(e => e.Name.LocalName == "UploadId").Value;
        var part = await fixture.SendSignedAsync(HttpMethod.Put, $"/raw-mpu/obj?partNumber=1&uploadId={uploadId}", "abc"u8.ToArray());
        Assert.Equal(200, (int)part.StatusCode);

        var malformed = await fixture.SendSignedAsync(HttpMethod.Post, $"/raw-mpu/obj?uploadId={uploadId}", "<CompleteMultipartUpload><Part>"u8.ToArray());
        Assert.Equal(400, (int)malformed.StatusCode);
        Assert.Equal("MalformedXML", await GatewayFixture.ErrorCodeAsync(malformed));
        var head = await fixture.SendSignedAsync(HttpMethod.Head, "/raw-mpu/obj");
        Assert.Equal(404, (int)head.StatusCode);
        Assert.Equal(200, (int)(await fixture.SendSignedAsync(HttpMethod.Get, $"/raw-mpu/obj?uploadId={uploadId}")).StatusCode);

        var unknown = await fixture.SendSignedAsync(HttpMethod.Get, "/raw-mpu/obj?uploadId=00000000000000000000000000000000");
        Assert.Equal(404, (int)unknown.StatusCode);
        Assert.Equal("NoSuchUpload", await GatewayFixture.ErrorCodeAsync(unknown));
        Assert.Equal(204, (int)(await fixture.SendSignedAsync(HttpMethod.Delete, $"/raw-mpu/obj?uploadId={uploadId}")).StatusCode);
    }

    private const string Boto3Script = """
        import sys, hashlib, concurrent.futures
        import boto3
        from botocore.config import Config
        endpoint, key, secret = sys.argv[1:4]
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", max_pool_connections=4))
        B = "boto-mpu"
        s3.create_bucket(Bucket=B)
        MiB = 1024 * 1024
        parts = [bytes([n]) * (5 * MiB) + hashlib.sha256(bytes([n])).digest() for n in range(1, 4)] + [b"tail" * 1000]

        def code(call):
            try:
                call()
            except s3.exceptions.ClientError as e:
                return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
            raise AssertionError("no error")

        # Parallel, out of order (4, 2, 3, 1), with metadata and content type given at initiation.
        up = s3.create_multipart_upload(Bucket=B, Key="obj", ContentType="text/x-test", Metadata={"color": "red"})["UploadId"]
        def put(n):
            return n, s3.upload_part(Bucket=B, Key="obj", UploadId=up, PartNumber=n, Body=parts[n - 1])["ETag"]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            etags = dict(pool.map(put, [4, 2, 3, 1]))
        for n in etags:
            assert etags[n] == '"%s"' % hashlib.md5(parts[n - 1]).hexdigest(), (n, etags[n])
        listed = s3.list_parts(Bucket=B, Key="obj", UploadId=up)["Parts"]
        assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [(n, len(parts[n - 1]), etags[n]) for n in range(1, 5)], listed
        assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=B).get("Uploads", [])] == [up]
        # Parts out of order in the complete request: InvalidPartOrder; a wrong ETag: InvalidPart; both change nothing.
        assert code(lambda: s3.complete_multipart_upload(Bucket=B, Key="obj", UploadId=up, MultipartUpload={"Parts": [
            {"PartNumber": 2, "ETag": etags[2]}, {"PartNumber": 1, "ETag": etags[1]}]})) == ("InvalidPartOrder", 400)
        assert code(lambda: s3.complete_multipart_upload(Bucket=B, Key="obj", UploadId=up, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": etags[2]}]})) == ("InvalidPart", 400)
        done = s3.complete_multipart_upload(Bucket=B, Key="obj", UploadId=up,
                                            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in range(1, 5)]})
        want = '"%s-4"' % hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
        assert done["ETag"] == want, done
        got = s3.get_object(Bucket=B, Key="obj")
        assert got["Body"].read() == b"".join(parts)
        assert got["ETag"] == want and got["ContentType"] == "text/x-test" and got["Metadata"] == {"color": "red"}, got
        assert s3.head_object(Bucket=B, Key="obj")["ETag"] == want
        assert code(lambda: s3.list_parts(Bucket=B, Key="obj", UploadId=up)) == ("NoSuchUpload", 404)

        # Abort leaves nothing: no upload listed, no object.
        up2 = s3.create_multipart_upload(Bucket=B, Key="aborted")["UploadId"]
        s3.upload_part(Bucket=B, Key="aborted", UploadId=up2, PartNumber=1, Body=b"x" * 1000)
        s3.abort_multipart_upload(Bucket=B, Key="aborted", UploadId=up2)
        assert s3.list_multipart_uploads(Bucket=B).get("Uploads", []) == []
        assert code(lambda: s3.head_object(Bucket=B, Key="aborted"))[1] == 404
        assert code(lambda: s3.upload_part(Bucket=B, Key="aborted", UploadId=up2, PartNumber=2, Body=b"y")) == ("NoSuchUpload", 404)
        r = code(lambda: s3.abort_multipart_upload(Bucket=B, Key="aborted", UploadId=up2))
        assert r == ("NoSuchUpload", 404), r

        # A non-last part below 5 MiB: EntityTooSmall, and the object is not written.
        up3 = s3.create_multipart_upload(Bucket=B, Key="small")["UploadId"]
        e1 = s3.upload_part(Bucket=B, Key="small", UploadId=up3, PartNumber=1, Body=b"a" * 1000)["ETag"]
        e2 = s3.upload_part(Bucket=B, Key="small", UploadId=up3, PartNumber=2, Body=b"b" * 1000)["ETag"]
        assert code(lambda: s3.complete_multipart_upload(Bucket=B, Key="small", UploadId=up3, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})) == ("EntityTooSmall", 400)
        assert code(lambda: s3.head_object(Bucket=B, Key="small"))[1] == 404
        # A wrong Content-MD5 on a part: BadDigest, the part not stored.
        import base64
        bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        assert code(lambda: s3.upload_part(Bucket=B, Key="small", UploadId=up3, PartNumber=3, Body=b"c" * 100, ContentMD5=bad)) == ("BadDigest", 400)
        assert [p["PartNumber"] for p in s3.list_parts(Bucket=B, Key="small", UploadId=up3)["Parts"]] == [1, 2]
        s3.abort_multipart_upload(Bucket=B, Key="small", UploadId=up3)
        print("OK")
        """;
}
