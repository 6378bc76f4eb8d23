using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Hapnd.Protocol;

namespace Hapnd.Compiler;

/// <summary>
/// The compiler's requests (protocol version <see cref="Frames.Version"/>), the C# side of
/// <c>server/src/runtime/protocol.rs</c>:
/// <list type="bullet">
/// <item><c>{"cmd":"compile","files":{"Name.cs":"..."},"allowlist":"..."}</c> →
/// <c>{"compiled":true,"dll":"base64","kind":"reducer","className","identity","stateType","policyHash","diagnostics":[...],"timingsMs":{...}}</c>
/// or <c>{"compiled":false,"policyHash","diagnostics":[...]}</c>.</item>
/// <item><c>{"cmd":"ping"}</c> → <c>{}</c>.</item>
/// </list>
/// A request the compiler cannot read gets the error kind <c>badRequest</c>.
/// </summary>
internal sealed class CompileService(UploadCompiler compiler)
{
    private readonly Dictionary<string, Allowlist> _allowlists = new(StringComparer.Ordinal);

    public void Handle(Frames frames, ReadOnlyMemory<byte> frame)
    {
        ulong id = 0;
        try
        {
            using var request = Requests.Open(frame, out id, out var body);
            switch (body.GetProperty("cmd").GetString())
            {
                case "compile":
                    Compile(frames, id, body);
                    break;
                case "ping":
                    var writer = frames.StartOk(id);
                    writer.WriteStartObject();
                    writer.WriteEndObject();
                    frames.EndOk(writer);
                    break;
                default:
                    frames.SendError(id, "badRequest", "unknown command: expected compile or ping");
                    break;
            }
        }
        catch (Exception error) when (error is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            frames.SendError(id, "badRequest", $"the request cannot be read: {error.Message}");
        }
    }

    private void Compile(Frames frames, ulong id, JsonElement body)
    {
        var allowlistText = body.GetProperty("allowlist").GetString() ?? "";
        Allowlist allowlist;
        try
        {
            allowlist = AllowlistFor(allowlistText);
        }
        catch (FormatException error)
        {
            frames.SendError(id, "badAllowlist", error.Message);
            return;
        }
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in body.GetProperty("files").EnumerateObject())
        {
            files[file.Name] = file.Value.GetString() ?? "";
        }
        var outcome = compiler.Compile(files, allowlist);

        var writer = frames.StartOk(id);
        writer.WriteStartObject();
        writer.WriteBoolean("compiled", outcome.Dll is not null);
        writer.WriteString("policyHash", outcome.PolicyHash);
        if (outcome is { Dll: { } dll, Found: { } found })
        {
            writer.WriteBase64String("dll", dll);
            writer.WriteString("kind", found.Kind);
            writer.WriteString("className", found.ClassName);
            writer.WriteString("identity", found.Identity);
            writer.WriteString("stateType", found.StateType);
        }
        writer.WriteStartArray("diagnostics");
        foreach (var diagnostic in outcome.Diagnostics)
        {
            writer.WriteStartObject();
            writer.WriteString("severity", diagnostic.Severity);
            writer.WriteString("code", diagnostic.Code);
            writer.WriteString("message", diagnostic.Message);
            if (diagnostic.File is not null)
            {
                writer.WriteString("file", diagnostic.File);
            }
            if (diagnostic.Line is { } line)
            {
                writer.WriteNumber("line", line);
            }
            if (diagnostic.Column is { } column)
            {
                writer.WriteNumber("column", column);
            }
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
        writer.WriteStartObject("timingsMs");
        foreach (var (name, ms) in outcome.TimingsMs)
        {
            writer.WriteNumber(name, Math.Round(ms, 3));
        }
        writer.WriteEndObject();
        writer.WriteEndObject();
        frames.EndOk(writer);
    }

    private Allowlist AllowlistFor(string text)
    {
        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
        if (!_allowlists.TryGetValue(key, out var allowlist))
        {
            allowlist = Allowlist.Parse(text);
            _allowlists[key] = allowlist;
        }
        return allowlist;
    }
}
