using Hapnd.Projections.Contracts;
public record OrderState { public string? CustomerId { get; init; } public decimal Total { get; init; } }
public record OrderPlacedData(string CustomerId);
public record ItemAddedData(string Item, decimal Price);
public class OrderReducer : IReducer<OrderState> {
    public OrderState Apply(OrderState? state, Event @event) {
        state ??= new OrderState();
        return @event.Type switch {
            "OrderPlaced" => state with { CustomerId = @event.GetData<OrderPlacedData>().CustomerId },
            "ItemAdded" => state with { Total = state.Total + @event.GetData<ItemAddedData>().Price },
            _ => state };
    }
}
