using System.Security.Cryptography;
using Chain.Harness;

namespace Chain.Gateway.Tests;

/// <summary>
/// Unmodified S3 tools (Debian packages: awscli 2.9, s3cmd 2.3, rclone 1.60, python3-boto3 1.26) against the gateway
/// of a real cluster. Each tool gets its configuration in a temporary directory (design/CLIENTS.md recipes).
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class RealClientTests(GatewayFixture fixture)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(90);

    private string Dir(string name) => fixture.NewWorkDir(name);

    private async Task<(int Code, string Out, string Err)> AwsAsync(string dir, string secret, params string[] args)
    {
        // Uploads here stay below the multipart threshold (multipart: MultipartHttpTests).
        var command = await fixture.AwsCommandAsync(dir, secret, "    multipart_threshold = 64MB\n");
        command.AddRange(args);
        var (code, stdout, stderr, _) = await Shell.RunUncheckedAsync("env", command, timeout: ToolTimeout);
        return (code, stdout, stderr);
    }

    private async Task<string> AwsOkAsync(string dir, params string[] args)
    {
        var (code, stdout, stderr) = await AwsAsync(dir, GatewayFixture.Secret, args);
        Assert.True(code == 0, $"aws {string.Join(' ', args)} exited {code}: {stderr}");
        return stdout;
    }

    [Fact]
    public async Task AwsCli_Is2x()
    {
        string version = await Shell.RunAsync("/usr/bin/aws", "--version");
        Assert.StartsWith("aws-cli/2.", version);
    }

    [Fact]
    public async Task AwsCli_MakeBucket_CopyUpAndDown_List_RangedGet_Copy_Remove()
    {
        string dir = Dir("aws");
        byte[] small = GatewayFixture.Content(1, 3_000_000);
        byte[] large = GatewayFixture.Content(2, 6_000_000); // above the client's 4 MiB chunk: a distributed object
        await File.WriteAllBytesAsync(Path.Combine(dir, "small"), small);
        await File.WriteAllBytesAsync(Path.Combine(dir, "large"), large);

        await AwsOkAsync(dir, "s3", "mb", "s3://aws-bucket");
        Assert.Contains("aws-bucket", await AwsOkAsync(dir, "s3", "ls"));
        await AwsOkAsync(dir, "s3", "cp", Path.Combine(dir, "small"), "s3://aws-bucket/dir/small file");
        await AwsOkAsync(dir, "s3", "cp", Path.Combine(dir, "large"), "s3://aws-bucket/large");

        string top = await AwsOkAsync(dir, "s3", "ls", "s3://aws-bucket/");
        Assert.Contains("PRE dir/", top);
        Assert.Contains("6000000 large", top);
        Assert.Contains("3000000 dir/small file", await AwsOkAsync(dir, "s3", "ls", "--recursive", "s3://aws-bucket"));

        await AwsOkAsync(dir, "s3", "cp", "s3://aws-bucket/dir/small file", Path.Combine(dir, "small.down"));
        await AwsOkAsync(dir, "s3", "cp", "s3://aws-bucket/large", Path.Combine(dir, "large.down"));
        Assert.Equal(small, await File.ReadAllBytesAsync(Path.Combine(dir, "small.down")));
        Assert.Equal(large, await File.ReadAllBytesAsync(Path.Combine(dir, "large.down")));

        // A range across the first chunk boundary of the distributed object.
        string ranged = Path.Combine(dir, "range.down");
        await AwsOkAsync(dir, "s3api", "get-object", "--bucket", "aws-bucket", "--key", "large", "--range", "bytes=4194000-4194999", ranged);
        Assert.Equal(large.AsSpan(4_194_000, 1000).ToArray(), await File.ReadAllBytesAsync(ranged));

        string head = await AwsOkAsync(dir, "s3api", "head-object", "--bucket", "aws-bucket", "--key", "large");
        Assert.Contains(Convert.ToHexStringLower(MD5.HashData(large)), head);

        // Server-side copy (CopyObject), then read the copy back.
        await AwsOkAsync(dir, "s3", "cp", "s3://aws-bucket/large", "s3://aws-bucket/copy");
        await AwsOkAsync(dir, "s3", "cp", "s3://aws-bucket/copy", Path.Combine(dir, "copy.down"));
        Assert.Equal(large, await File.ReadAllBytesAsync(Path.Combine(dir, "copy.down")));

        await AwsOkAsync(dir, "s3", "rm", "s3://aws-bucket/large");
        await AwsOkAsync(dir, "s3", "rm", "--recursive", "s3://aws-bucket/");
        Assert.Equal("", (await AwsOkAsync(dir, "s3", "ls", "--recursive", "s3://aws-bucket")).Trim());
        await AwsOkAsync(dir, "s3", "rb", "s3://aws-bucket");
        Assert.DoesNotContain("aws-bucket", await AwsOkAsync(dir, "s3", "ls"));
    }

    [Fact]
    public async Task AwsCli_WrongSecret_Is403SignatureDoesNotMatch_Unsigned_Is403AccessDenied()
    {
        string dir = Dir("aws-wrong");
        var (code, _, stderr) = await AwsAsync(dir, GatewayFixture.Secret + "-wrong", "s3", "ls");
        Assert.NotEqual(0, code);
        Assert.Contains("SignatureDoesNotMatch", stderr);

        var response = await fixture.Http.GetAsync(new Uri(fixture.Endpoint, "/"));
        Assert.Equal(403, (int)response.StatusCode); // unsigned request to a private service
        Assert.Equal("AccessDenied", await GatewayFixture.ErrorCodeAsync(response));
    }

    [Fact]
    public async Task S3cmd_Put_Get_Ls_Del()
    {
        string dir = Dir("s3cmd");
        string config = await fixture.WriteS3cmdConfigAsync(dir);
        byte[] data = GatewayFixture.Content(3, 2_500_000);
        await File.WriteAllBytesAsync(Path.Combine(dir, "up"), data);
        async Task<string> S3cmd(params string[] args)
        {
            var (code, stdout, stderr, line) = await Shell.RunUncheckedAsync("/usr/bin/s3cmd", args.Prepend(config).Prepend("-c").Append("--no-progress"),
                timeout: ToolTimeout);
            Assert.True(code == 0, $"{line} exited {code}: {stderr}");
            return stdout;
        }

        await S3cmd("mb", "s3://s3cmd-bucket");
        await S3cmd("put", Path.Combine(dir, "up"), "s3://s3cmd-bucket/a/b.bin");
        Assert.Contains("DIR  s3://s3cmd-bucket/a/", await S3cmd("ls", "s3://s3cmd-bucket"));
        Assert.Contains("2500000  s3://s3cmd-bucket/a/b.bin", await S3cmd("ls", "-r", "s3://s3cmd-bucket"));
        await S3cmd("get", "--force", "s3://s3cmd-bucket/a/b.bin", Path.Combine(dir, "down"));
        Assert.Equal(data, await File.ReadAllBytesAsync(Path.Combine(dir, "down")));
        await S3cmd("del", "s3://s3cmd-bucket/a/b.bin");
        Assert.DoesNotContain("b.bin", await S3cmd("ls", "-r", "s3://s3cmd-bucket"));
    }

    [Fact]
    public async Task Rclone_Copy_Check_Lsf_CatWithOffset()
    {
        string dir = Dir("rclone");
        string config = await fixture.WriteRcloneConfigAsync(dir);
        string source = Path.Combine(dir, "src");
        Directory.CreateDirectory(Path.Combine(source, "sub"));
        await File.WriteAllBytesAsync(Path.Combine(source, "one.bin"), GatewayFixture.Content(4, 1_000_000));
        await File.WriteAllTextAsync(Path.Combine(source, "sub", "two.txt"), "0123456789abcdef");
        async Task<string> Rclone(params string[] args)
        {
            // rclone's TLS setup fails when AWS_CA_BUNDLE points at a missing file; it talks plain HTTP here.
            var (code, stdout, stderr, line) = await Shell.RunUncheckedAsync("env",
                new[] { "-u", "AWS_CA_BUNDLE", "/usr/bin/rclone", "--config", config }.Concat(args), timeout: ToolTimeout);
            Assert.True(code == 0, $"{line} exited {code}: {stderr}");
            return stdout;
        }

        await Rclone("copy", source, "chain:rclone-bucket/x");
        await Rclone("check", source, "chain:rclone-bucket/x");
        string listing = await Rclone("lsf", "-R", "chain:rclone-bucket/x");
        Assert.Equal(new[] { "one.bin", "sub/", "sub/two.txt" }, listing.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order().ToArray());
        Assert.Equal("abcd", await Rclone("cat", "--offset", "10", "--count", "4", "chain:rclone-bucket/x/sub/two.txt"));
    }

    [Fact]
    public async Task Boto3_ListPagination_And_PresignedGet()
    {
        string dir = Dir("boto3");
        string script = Path.Combine(dir, "check.py");
        await File.WriteAllTextAsync(script, Boto3Script);
        var (code, stdout, stderr, _) = await Shell.RunUncheckedAsync("/usr/bin/python3",
            [script, fixture.EndpointText, GatewayFixture.AccessKey, GatewayFixture.Secret], timeout: ToolTimeout);
        Assert.True(code == 0, $"boto3 script exited {code}: {stdout}\n{stderr}");
        Assert.Contains("boto3 1.26", stdout);
        Assert.EndsWith("OK", stdout.Trim());
    }

    private const string Boto3Script = """
        import sys, urllib.request, urllib.error
        import boto3
        from botocore.config import Config
        endpoint, key, secret = sys.argv[1:4]
        print("boto3", boto3.__version__)
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                          region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
        s3.create_bucket(Bucket="boto-bucket")
        keys = sorted("k/%03d" % i for i in range(23)) + ["top"]
        for k in keys:
            s3.put_object(Bucket="boto-bucket", Key=k, Body=k.encode())
        # V2 pagination: 7 per page, continuation tokens.
        seen, pages = [], 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="boto-bucket", PaginationConfig={"PageSize": 7}):
            pages += 1
            seen += [o["Key"] for o in page.get("Contents", [])]
        assert seen == keys, seen
        assert pages == 4, pages
        # Delimiter: one common prefix and one object.
        top = s3.list_objects_v2(Bucket="boto-bucket", Delimiter="/")
        assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["k/"], top
        assert [o["Key"] for o in top["Contents"]] == ["top"], top
        # V1 pagination with markers, and start-after.
        v1 = [o["Key"] for page in s3.get_paginator("list_objects").paginate(Bucket="boto-bucket", PaginationConfig={"PageSize": 5}) for o in page.get("Contents", [])]
        assert v1 == keys, v1
        after = s3.list_objects_v2(Bucket="boto-bucket", StartAfter="k/020")
        assert [o["Key"] for o in after["Contents"]] == ["k/021", "k/022", "top"], after
        # Versions of an unversioned bucket.
        versions = s3.list_object_versions(Bucket="boto-bucket", Prefix="top")
        assert [(v["Key"], v["VersionId"]) for v in versions["Versions"]] == [("top", "null")], versions
        # Presigned GET (Signature V4 query parameters; boto3 1.26 presigns with V2 unless told s3v4): the object's
        # bytes; a tampered signature is refused.
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "boto-bucket", "Key": "k/005"}, ExpiresIn=300)
        assert "X-Amz-Signature=" in url, url
        assert urllib.request.urlopen(url).read() == b"k/005"
        try:
            urllib.request.urlopen(url[:-4] + ("0000" if not url.endswith("0000") else "1111"))
            raise AssertionError("tampered presigned URL was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 403 and b"SignatureDoesNotMatch" in e.read(), e
        # Metadata and content type round trip; conditional get.
        s3.put_object(Bucket="boto-bucket", Key="meta", Body=b"x", ContentType="text/plain", Metadata={"color": "blue"})
        head = s3.head_object(Bucket="boto-bucket", Key="meta")
        assert head["ContentType"] == "text/plain" and head["Metadata"] == {"color": "blue"}, head
        try:
            s3.get_object(Bucket="boto-bucket", Key="meta", IfNoneMatch=head["ETag"])
            raise AssertionError("If-None-Match with the current ETag did not answer 304")
        except s3.exceptions.ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 304, e.response
        # DeleteObjects (POST ?delete with Content-MD5).
        result = s3.delete_objects(Bucket="boto-bucket", Delete={"Objects": [{"Key": k} for k in keys + ["meta"]]})
        assert sorted(d["Key"] for d in result["Deleted"]) == sorted(keys + ["meta"]), result
        assert s3.list_objects_v2(Bucket="boto-bucket")["KeyCount"] == 0
        print("OK")
        """;
}
