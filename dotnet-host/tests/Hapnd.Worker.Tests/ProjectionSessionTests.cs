using System.Text.Json.Nodes;
using Hapnd.Projections.Contracts;

namespace Hapnd.Worker.Tests;

public sealed record Mailbox(int Unread);

/// <summary>
/// Unread counts by the <c>mailbox</c> in an event's data (none: the event is skipped); <c>Read</c> lowers it, an
/// event of type <c>Boom</c> throws in Apply and one of type <c>Lost</c> in ResolveKey.
/// </summary>
public sealed class MailboxProjection : IProjection<Mailbox>
{
    public string? ResolveKey(Event @event) => @event.Type == "Lost"
        ? throw new InvalidDataException("no key on purpose")
        : @event.Data.TryGetProperty("mailbox", out var mailbox) ? mailbox.GetString() : null;

    public Mailbox Apply(Mailbox? state, Event @event) => @event.Type switch
    {
        "Boom" => throw new ArgumentException("boom on purpose"),
        "Read" => new Mailbox((state?.Unread ?? 0) - 1),
        _ => new Mailbox((state?.Unread ?? 0) + 1),
    };
}

/// <summary>
/// The worker's projection session through its real request handling: states kept between batches, asked for when
/// not resident, flushed when changed, let go past a bound, and failures counted in session rows.
/// </summary>
public sealed class ProjectionSessionTests : IDisposable
{
    private readonly WorkerHarness _worker = new();
    private int _position;

    public ProjectionSessionTests()
    {
        _worker.Load(typeof(MailboxProjection), "projection");
    }

    public void Dispose() => _worker.Dispose();

    [Fact]
    public void A_fresh_session_folds_batches_and_flushes_only_what_changed_since_the_last_flush()
    {
        Ok(Ask("""{"cmd":"projectBegin","fresh":true}"""));
        var first = Ok(Ask(Batch(("Mail", "a"), ("Mail", "b"), ("Tick", null), ("Mail", "a"))));
        Assert.Equal(3, first["applied"]!.GetValue<int>());
        Assert.Equal(1, first["skipped"]!.GetValue<int>());
        Assert.Equal(2, first["resident"]!.GetValue<int>());
        Assert.Null(first["changes"]);
        Assert.Equal("""{"a":{"unread":2},"b":{"unread":1}}""", Flush(100));

        Ok(Ask(Batch(("Read", "a"))));
        Assert.Equal("""{"a":{"unread":1}}""", Flush(100));
        Assert.Equal("{}", Flush(100));
        Assert.Equal("{}", Ok(Ask("""{"cmd":"projectEnd"}""")).ToJsonString());
        Assert.Equal("noSession", Error(Ask(Batch(("Mail", "a"))))["kind"]!.GetValue<string>());
    }

    [Fact]
    public void A_session_over_stored_states_asks_for_each_missing_key_once_and_resumes_with_them()
    {
        Ok(Ask("""{"cmd":"projectBegin","fresh":false}"""));
        var asked = Ok(Ask(Batch(("Mail", "a"), ("Mail", "b"), ("Mail", "a"), ("Tick", null))));
        Assert.Equal("""["a","b"]""", asked["need"]!.ToJsonString());
        // Nothing else runs while the batch waits.
        Assert.Equal("badRequest", Error(Ask(Batch(("Mail", "a"))))["kind"]!.GetValue<string>());

        Ok(Ask("""{"cmd":"projectBegin","fresh":false}"""));
        Ok(Ask(Batch(("Mail", "a"), ("Mail", "b"), ("Mail", "a"))));
        var resumed = Ok(Ask("""{"cmd":"projectResume","states":{"a":{"unread":10},"b":null}}"""));
        Assert.Equal(3, resumed["applied"]!.GetValue<int>());
        Assert.Equal("""{"a":{"unread":12},"b":{"unread":1}}""", Flush(100));

        // Resident keys are not asked for again; a new one is.
        Assert.Null(Ok(Ask(Batch(("Read", "a"))))["need"]);
        Assert.Equal("""["c"]""", Ok(Ask(Batch(("Mail", "c"), ("Mail", "b"))))["need"]!.ToJsonString());
        Assert.Equal("badRequest",
            Error(Ask("""{"cmd":"projectResume","states":{}}"""))["kind"]!.GetValue<string>());
    }

    [Fact]
    public void States_let_go_after_a_flush_are_asked_for_again_even_in_a_fresh_session()
    {
        Ok(Ask("""{"cmd":"projectBegin","fresh":true}"""));
        Ok(Ask(Batch(("Mail", "a"), ("Mail", "b"))));
        var flushed = Ok(Ask("""{"cmd":"projectFlush","keep":1}"""));
        Assert.Equal(0, flushed["resident"]!.GetValue<int>());
        Assert.Equal("""["a"]""", Ok(Ask(Batch(("Mail", "a"))))["need"]!.ToJsonString());
        Ok(Ask("""{"cmd":"projectResume","states":{"a":{"unread":1}}}"""));
        Assert.Equal("""{"a":{"unread":2}}""", Flush(1));
    }

    [Fact]
    public void A_recorded_batch_answers_every_state_change_in_order_with_its_position()
    {
        Ok(Ask("""{"cmd":"projectBegin","fresh":true}"""));
        Ok(Ask(Batch(("Mail", "a"))));
        var recorded = Ok(Ask(Batch(true, ("Mail", "a"), ("Tick", null), ("Mail", "b"), ("Read", "a"))));
        Assert.Equal("""[[2,"a",{"unread":2}],[4,"b",{"unread":1}],[5,"a",{"unread":1}]]""",
            recorded["changes"]!.ToJsonString());
    }

    [Theory]
    [InlineData("Boom", "System.ArgumentException")]
    [InlineData("Lost", "System.IO.InvalidDataException")]
    public void A_throwing_event_fails_at_its_row_counted_from_the_session_start_and_ends_the_session(
        string type, string exceptionType)
    {
        Ok(Ask("""{"cmd":"projectBegin","fresh":true}"""));
        Ok(Ask(Batch(("Mail", "a"), ("Tick", null))));
        var failed = Error(Ask(Batch(("Mail", "a"), (type, "a"))));
        Assert.Equal("userException", failed["kind"]!.GetValue<string>());
        Assert.Equal(exceptionType, failed["detail"]!["exceptionType"]!.GetValue<string>());
        Assert.Equal(3, failed["detail"]!["eventIndex"]!.GetValue<int>());
        Assert.Equal("noSession", Error(Ask("""{"cmd":"projectFlush","keep":10}"""))["kind"]!.GetValue<string>());
    }

    private string Flush(int keep) =>
        Ok(Ask($$"""{"cmd":"projectFlush","keep":{{keep}}}"""))["states"]!.ToJsonString();

    private string Batch(params (string Type, string? Mailbox)[] events) => Batch(false, events);

    /// <summary>A projectBatch of events with the given types and mailboxes, positions counting on across batches.</summary>
    private string Batch(bool record, params (string Type, string? Mailbox)[] events)
    {
        var rows = events.Select(e =>
        {
            var position = ++_position;
            var data = e.Mailbox is null ? "{}" : $$"""{"mailbox":"{{e.Mailbox}}"}""";
            return $$"""[null,"00000000-0000-4000-8000-{{position:D12}}","email-{{position}}","email","{{e.Type}}",1,{{position}},1767225600000000,{{data}},null,null,null]""";
        });
        return $$"""{"cmd":"projectBatch","record":{{(record ? "true" : "false")}},"events":[{{string.Join(",", rows)}}]}""";
    }

    private JsonNode Ask(string body) => _worker.Ask(body);

    private static JsonNode Ok(JsonNode response) => WorkerHarness.Ok(response);

    private static JsonNode Error(JsonNode response) => WorkerHarness.Error(response);
}
