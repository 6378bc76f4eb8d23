using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Hapnd.Protocol;

namespace Hapnd.Worker.Tests;

/// <summary>
/// A worker's real request handling (<see cref="WorkerService"/> over <see cref="Frames"/>) with a signing key of
/// its own, for tests that speak to it one request at a time. The jailed end to end runs are in the repository's
/// <c>tests/</c>.
/// </summary>
internal sealed class WorkerHarness : IDisposable
{
    private readonly MemoryStream _output = new();
    private readonly Frames _frames;
    private readonly WorkerService _service;
    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private ulong _id;

    public WorkerHarness()
    {
        var point = _key.ExportParameters(false).Q;
        var verifier = ArtifactVerifier.FromHex("04" + Convert.ToHexString(point.X!) + Convert.ToHexString(point.Y!));
        _frames = new Frames(new MemoryStream(), _output);
        _service = new WorkerService(verifier);
    }

    public void Dispose()
    {
        _key.Dispose();
        _output.Dispose();
    }

    /// <summary>Loads <paramref name="type"/> of this test assembly, signed, as a <paramref name="kind"/>.</summary>
    public void Load(Type type, string kind)
    {
        var dll = File.ReadAllBytes(type.Assembly.Location);
        var signature = _key.SignData(dll, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        var loaded = Ok(Ask($$"""
            {"cmd":"load","dll":"{{Convert.ToBase64String(dll)}}","signature":"{{Convert.ToBase64String(signature)}}",
             "className":"{{type.FullName}}","kind":"{{kind}}"}
            """));
        Assert.Equal(kind, loaded["kind"]!.GetValue<string>());
    }

    /// <summary>Sends one request body to the worker and returns its one response.</summary>
    public JsonNode Ask(string body)
    {
        var id = ++_id;
        _output.SetLength(0);
        _service.Handle(_frames, Encoding.UTF8.GetBytes($$"""{"type":"request","id":{{id}},"body":{{body}}}"""));
        var written = _output.ToArray();
        var length = BinaryPrimitives.ReadInt32LittleEndian(written);
        Assert.Equal(written.Length - 4, length);
        var response = JsonNode.Parse(written.AsSpan(4))!;
        Assert.Equal(id, response["id"]!.GetValue<ulong>());
        return response;
    }

    public static JsonNode Ok(JsonNode response) =>
        response["ok"] ?? throw new Xunit.Sdk.XunitException($"an error: {response.ToJsonString()}");

    public static JsonNode Error(JsonNode response) =>
        response["error"] ?? throw new Xunit.Sdk.XunitException($"not an error: {response.ToJsonString()}");
}
