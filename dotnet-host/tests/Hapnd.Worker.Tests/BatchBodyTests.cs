using System.Text;
using System.Text.Json;
using Hapnd.Protocol;

namespace Hapnd.Worker.Tests;

public sealed class BatchBodyTests
{
    private static byte[] Frame(string body) => Encoding.UTF8.GetBytes("{\"type\":\"request\",\"id\":7,\"body\":" + body + "}");

    private const string Row = """["k1","00000000-0000-4000-8000-000000000001","order_1","order","Placed",1,5,1767225600000001,{"a":"x]}\"y","n":[1,{"b":null}]},{"m":1},"corr \"1\"",null]""";

    [Fact]
    public void A_row_gives_every_field_of_the_event()
    {
        var batch = BatchBody.Read(Frame($$"""{"cmd":"applyBatch","states":{"k1":{"n":2},"k2":null},"events":[{{Row}}]}"""), out var id);
        Assert.Equal(7UL, id);
        Assert.Equal("applyBatch", batch.Command);
        Assert.Equal("""{"n":2}""", batch.States["k1"]);
        Assert.Null(batch.States["k2"]);
        var (key, @event) = Assert.Single(batch.Rows);
        Assert.Equal("k1", key);
        Assert.Equal(Guid.Parse("00000000-0000-4000-8000-000000000001"), @event.EventId);
        Assert.Equal(("order_1", "order", "Placed"), (@event.AggregateId, @event.AggregateType, @event.Type));
        Assert.Equal((1L, 5L), (@event.Version, @event.GlobalPosition));
        Assert.Equal(DateTimeOffset.Parse("2026-01-01T00:00:00.000001Z"), @event.Timestamp);
        Assert.Equal("x]}\"y", @event.Data.GetProperty("a").GetString());
        Assert.Equal(JsonValueKind.Null, @event.Data.GetProperty("n")[1].GetProperty("b").ValueKind);
        Assert.Equal(1, @event.Metadata?.GetProperty("m").GetInt32());
        Assert.Equal("corr \"1\"", @event.CorrelationId);
        Assert.Null(@event.CausationId);
    }

    [Fact]
    public void Repeated_columns_share_one_string_and_escaped_text_is_decoded()
    {
        var second = Row.Replace("\"Placed\"", "\"Pl\\u0061ced\"");
        var batch = BatchBody.Read(Frame($$"""{"cmd":"resolveKeys","events":[{{Row}},{{Row}},{{second}}]}"""), out _);
        Assert.Equal(3, batch.Rows.Count);
        Assert.Same(batch.Rows[0].Event.AggregateId, batch.Rows[1].Event.AggregateId);
        Assert.Equal("Placed", batch.Rows[2].Event.Type);
    }

    [Theory]
    [InlineData("""[["k","not-a-guid","a","b","c",1,1,1,{},null,null,null]]""")]
    [InlineData("""[["k","00000000-0000-4000-8000-000000000001","a","b","c",1,1,1,{}]]""")]
    [InlineData("""[["k","00000000-0000-4000-8000-000000000001","a","b","c","one",1,1,{},null,null,null]]""")]
    [InlineData("""[["k","00000000-0000-4000-8000-000000000001","a","b","c",1,1,1,{"open":1,null,null,null]]""")]
    [InlineData("""[{"eventId":"00000000-0000-4000-8000-000000000001"}]""")]
    public void A_malformed_row_is_a_format_error(string events)
    {
        var error = Record.Exception(() => BatchBody.Read(Frame($$"""{"cmd":"applyBatch","events":{{events}}}"""), out _));
        Assert.True(error is FormatException or JsonException, error?.GetType().Name);
    }

    [Fact]
    public void Rows_must_end_the_request()
    {
        var error = Assert.Throws<FormatException>(() =>
            BatchBody.Read(Frame($$$"""{"cmd":"applyBatch","events":[{{{Row}}}],"states":{}}"""), out _));
        Assert.Contains("last", error.Message);
    }

    [Fact]
    public void Other_commands_keep_their_body_for_a_document_and_a_non_request_is_refused()
    {
        var batch = BatchBody.Read(Frame("""{"cmd":"apply","state":null,"event":{"x":[1,2]}}"""), out var id);
        Assert.Equal(("apply", 7UL), (batch.Command, id));
        using var document = JsonDocument.Parse(batch.Body);
        Assert.Equal(2, document.RootElement.GetProperty("event").GetProperty("x").GetArrayLength());
        Assert.Throws<ProtocolException>(() => BatchBody.Read(Encoding.UTF8.GetBytes("""{"type":"hello","id":1,"body":{}}"""), out _));
    }
}
